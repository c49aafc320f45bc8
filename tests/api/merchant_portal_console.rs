//! Issue 23, the merchant portal console pages (CONTRACT §7.7).

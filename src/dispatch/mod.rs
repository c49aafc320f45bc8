//! Delivery of payloads to receivers: one HTTP attempt (`client`), its signatures
//! (`signing`), when to try again (`retry`), and the loop that claims due payloads (`worker`).

pub mod client;
pub mod retry;
pub mod signing;

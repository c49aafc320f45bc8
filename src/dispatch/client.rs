//! placeholder until the dispatch helper lands

//! Any bytes as a manifest file: read, validate and allocate without panicking.
//! Run: `cargo +nightly fuzz run manifests -- -max_total_time=300` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let loaded = ferrolb_source::load_documents([("fuzz.yaml", data)]);
    if let Ok(config) = ferrolb_model::validate(&loaded.snapshot) {
        let _ = ferrolb_allocator::allocate(
            &config,
            &loaded.snapshot,
            &ferrolb_allocator::Options::default(),
            &BTreeMap::new(),
        );
    }
});

//! `validate_key_package` on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlskit_fuzz::{run, typed};

fuzz_target!(|data: &[u8]| {
    run(|| {
        if let Some(info) = typed(mlskit::validate_key_package(data.to_vec())) {
            let _ = format!("{info:?}");
        }
    });
});

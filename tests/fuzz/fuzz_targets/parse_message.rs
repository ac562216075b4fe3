//! `parse_message` on arbitrary bytes: routing facts or `MalformedInput`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mlskit_fuzz::{run, typed};

fuzz_target!(|data: &[u8]| {
    run(|| {
        if let Some(info) = typed(mlskit::parse_message(data.to_vec())) {
            let _ = format!("{info:?}");
        }
    });
});

//! `uniffi-bindgen`: generates MLSKit's foreign-language bindings with the
//! same UniFFI version the library is built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}

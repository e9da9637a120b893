//! Fuzzes the path untrusted config takes: YAML/JSON text -> resources -> validation ->
//! analysis. Any panic is a bug; errors are the expected answer to garbage.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let resources: Vec<_> = weft_config::parse_documents(text)
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    for r in &resources {
        let _ = r.validate();
        let _ = r.to_json();
    }
    let _ = weft_config::analyze::analyze(&resources, &Default::default());
});

//! Every request's parser and validation on arbitrary bytes: the first byte picks the request
//! kind (`ivory_gateway::fuzzing::Kind::from_byte`), the rest is its body (or query, or path id).
//! A panic, or an error that is not a 4xx refusal with a stable code, is a finding.
#![no_main]

use ivory_gateway::fuzzing::{Kind, decode, is_refusal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, input)) = data.split_first() else {
        return;
    };
    let kind = Kind::from_byte(*first);
    if let Err(e) = decode(kind, input) {
        assert!(is_refusal(&e), "{kind:?}: {} {}: {}", e.status, e.code, e.message);
    }
});

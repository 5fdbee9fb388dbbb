//! The words compressible text payloads are made of, in a pseudo-random
//! order: English-like and JSON-like pieces that deflate shrinks several
//! times without being one repeated sentence. The load client's
//! `Content::CompressibleText` and the engine's path benchmark
//! (crates/websocket-engine/benches/path.rs, which includes this file) both
//! build their text from it.

/// The pieces, each with its trailing space or punctuation.
pub const WORDS: &[&str] = &[
    "the ",
    "server ",
    "sends ",
    "a ",
    "message ",
    "to ",
    "every ",
    "client ",
    "and ",
    "waits ",
    "for ",
    "its ",
    "answer, ",
    "while ",
    "Apache ",
    "keeps ",
    "the ",
    "connection ",
    "open. ",
    "Frames ",
    "are ",
    "small ",
    "or ",
    "large; ",
    "text ",
    "compresses ",
    "well ",
    "when ",
    "it ",
    "repeats ",
    "words ",
    "like ",
    "these. ",
    "{\"id\": ",
    "\"status\": \"ok\", ",
    "\"items\": [",
    "1, 2, 3], ",
    "\"name\": \"echo\"} ",
];

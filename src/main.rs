//! The `bosun` binary: parses flags and wires the libraries together.
fn main() {
    let _ = (api::resources::RESOURCES.len(), agent::STATUS);
}

//! In-memory event window and watcher fan-out (to be written).

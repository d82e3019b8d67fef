//! SQLite backend of the store (to be written).

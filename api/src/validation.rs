//! Validation of names, labels and annotations (to be written).

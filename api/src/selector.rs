//! Label and field selectors (to be written).

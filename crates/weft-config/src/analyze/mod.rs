//! `istioctl analyze` for Weft: IST-coded messages about a set of resources. TODO: fill in.

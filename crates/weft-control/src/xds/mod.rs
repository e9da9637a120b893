//! The ADS server: one gRPC stream per proxy, state-of-the-world and delta. TODO(issue 3).

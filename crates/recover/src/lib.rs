//! Repository checks and recovery of missing files from gold.

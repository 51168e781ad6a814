//! Repository slimming: classify files, remove rebuildable containers.

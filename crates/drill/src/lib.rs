//! Disaster-recovery drills against scratch sites.

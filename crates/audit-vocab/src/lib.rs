//! The controlled action vocabulary (`audit.toml`, Contract 3). Not built yet: see the
//! macro issue.

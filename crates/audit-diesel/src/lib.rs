//! Diesel integration of the audit toolkit. Not built yet: see the diesel issue.

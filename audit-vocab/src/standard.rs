//! The standard always-log set, switched on by `include_standard = true`.

use crate::{Action, Category};

/// An action of the standard set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardAction {
    /// The action name.
    pub name: &'static str,
    /// Its category.
    pub category: Category,
    /// What it means.
    pub description: &'static str,
}

impl StandardAction {
    pub(crate) fn to_action(self) -> Action {
        Action {
            name: self.name.to_owned(),
            category: self.category,
            description: self.description.to_owned(),
            deprecated: None,
            standard: true,
            line: None,
        }
    }
}

macro_rules! standard {
    ($($name:literal, $category:ident, $description:literal;)*) => {
        /// The always-log set of DESIGN.md: logins, logouts, MFA challenges, password changes,
        /// role grants and revocations, permission updates, impersonation, data exports,
        /// account deletions, and requests refused at the edge (401, 403). Failed attempts of each are recorded under the same action with
        /// outcome `failure` (which `#[audited]` does automatically for an `Err` or a panic), so
        /// "every failed login" is `action = user.login` and `outcome.status = failure`.
        pub const STANDARD_ACTIONS: &[StandardAction] = &[
            $(StandardAction {
                name: $name,
                category: Category::$category,
                description: concat!($description, " A failed attempt is the same action with outcome `failure` and its reason."),
            },)*
        ];
    };
}

standard! {
    "user.login", Authentication, "A principal signed in (password, SSO, API key, token).";
    "user.logout", Authentication, "A principal signed out or a session was ended.";
    "user.mfa_challenge", Authentication, "A multi-factor challenge was answered.";
    "user.password_change", Authentication, "A password was changed or reset.";
    "role.grant", Authorization, "A role was granted to a principal.";
    "role.revoke", Authorization, "A role was revoked from a principal.";
    "permission.update", Authorization, "A permission or policy was changed.";
    "user.impersonate", Admin, "An administrator started acting as another principal.";
    "data.export", Admin, "Data was exported out of the system (reports, bulk downloads, customer exports).";
    "account.delete", Admin, "An account was deleted.";
    "access.unauthenticated", Authentication, "A request without valid credentials was refused (HTTP 401).";
    "access.denied", Authorization, "A request was refused for lack of rights (HTTP 403).";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_names_follow_the_rule_and_mention_failures() {
        for s in STANDARD_ACTIONS {
            crate::validate_action_name(s.name).unwrap();
            assert!(
                s.description.ends_with("outcome `failure` and its reason."),
                "{}",
                s.name
            );
        }
        assert_eq!(STANDARD_ACTIONS.len(), 12);
    }
}

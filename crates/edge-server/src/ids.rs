//! Typed identifiers: an organization's, an app's, a user's, a deployment's and a task's id
//! (its name) are different types, and so is a build's (a number per app), so handing one
//! where another is expected does not compile. Each is its text, or its number (`serde`
//! and `sqlx` transparent): the wire and the database see the same bytes as before.

use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id: one freshly generated, or one read back from where ids are kept.
        /// (`Default` is the empty id, what an absent one always read as.)
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An organization's id (a UUID, `orgs.id`, `org_id` elsewhere).
    OrgId
);
id_type!(
    /// An app's id (`app_…`, `apps.id`, `app_id` elsewhere).
    AppId
);
id_type!(
    /// A user's id, a person's or a machine user's (a UUID, `users.id`, `user_id`
    /// elsewhere).
    UserId
);
id_type!(
    /// A deployment's id (`dep_…`, `deployments.id`, `deployment_id` elsewhere, where the
    /// empty id stands for the depot).
    DeploymentId
);

id_type!(
    /// A task's name, its id (`t…`, `tasks.name`, `task_name` elsewhere).
    TaskId
);

/// A build's id: its number in its app, counting up from 1 (`builds.build_id`, `build_id`
/// and `i_cur_build` elsewhere). Only meaningful with the app's id beside it.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    sqlx::Type,
)]
#[sqlx(transparent)]
#[serde(transparent)]
pub struct BuildId(i64);

impl BuildId {
    /// Wraps a build's number: one just taken, or one read back from where ids are kept.
    pub fn new(id: i64) -> Self {
        BuildId(id)
    }

    /// The build's number.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_text_on_the_wire() {
        let o = OrgId::new("0f8c2c1e-6a53-4d8e-9b1a-2f0c4b7d9e11");
        assert_eq!(serde_json::to_string(&o).unwrap(), "\"0f8c2c1e-6a53-4d8e-9b1a-2f0c4b7d9e11\"");
        assert_eq!(
            serde_json::from_str::<OrgId>("\"0f8c2c1e-6a53-4d8e-9b1a-2f0c4b7d9e11\"").unwrap(),
            o
        );
        let a = AppId::new("app_0190aabbccdd0011223344556677");
        assert_eq!(a.to_string(), "app_0190aabbccdd0011223344556677");
        assert_eq!(format!("chunks/{a}"), format!("chunks/{}", a.as_str()));
        let b = BuildId::new(12);
        assert_eq!(serde_json::to_string(&b).unwrap(), "12");
        assert_eq!(serde_json::from_str::<BuildId>("12").unwrap(), b);
        assert_eq!(b.to_string(), "12");
    }
}

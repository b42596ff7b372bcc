//! Users (`/be/v1/users`, resource `beUsers`): persons and machine users, memberships,
//! profile and password changes, credential resets, and the no-takeover rules.

use super::extract::{JsonBody, ListQuery, ListSpec};
use super::reply::{page, projected, FieldsParam, ListParams, Message, Reply, Success};
use crate::caller::Caller;
use crate::domain::users::change::UserChange;
use crate::domain::users::{self as users_domain, UserIn, UserType};
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, R};
use crate::state::AppState;
use crate::store::users::{self, User};
use crate::util::rfc3339;
use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::ToSchema;

/// Routes of this module.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/be/v1/users", get(list_users).post(post_user).patch(patch_user))
        .route("/be/v1/users/{username}", get(get_user).delete(delete_user))
}

/// A member of the organization: a person or a machine user (never a hash, key or
/// secret). Fields a user does not have are absent.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Its id (a UUID).
    id: String,
    /// Unique in the instance.
    username: String,
    /// A person or a machine user.
    #[serde(rename = "type")]
    kind: UserType,
    /// Names of the roles it holds in this organization, sorted.
    roles: Vec<String>,
    /// A machine user's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    label: Option<String>,
    /// A title, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    title: Option<String>,
    /// A person's e-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    email: Option<String>,
    /// A person's first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    firstname: Option<String>,
    /// A person's surname.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    surname: Option<String>,
    /// When it was created (RFC 3339).
    created: String,
    /// When it last changed (RFC 3339).
    updated: String,
    /// When the person last opened a session (RFC 3339); absent before the first login.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    last_login: Option<String>,
}

impl UserView {
    fn of(u: &User, roles: &[String]) -> UserView {
        UserView {
            id: u.id.to_string(),
            username: u.username.clone(),
            kind: UserType::of(u),
            roles: roles.to_vec(),
            label: u.label.clone(),
            title: u.title.clone(),
            email: u.email.clone(),
            firstname: u.firstname.clone(),
            surname: u.surname.clone(),
            created: rfc3339(u.created),
            updated: rfc3339(u.updated),
            last_login: u.last_login.map(rfc3339),
        }
    }
}

/// A new user, with its first credential.
#[derive(Serialize, ToSchema)]
pub struct UserCreated {
    /// Always `success`.
    status: Success,
    /// The user as created.
    user: UserView,
    /// A person's initial password, shown this once.
    #[serde(rename = "initialPW", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    initial_pw: Option<String>,
    /// A machine user's first API key (`rk_<keyId>_<secret>`), shown this once.
    #[serde(rename = "apiKey", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    api_key: Option<String>,
}

/// Create a person or machine user
///
/// The user becomes a member of the caller's organization with the roles named, which
/// may grant only permissions the caller holds (else 403). A taken username (in any
/// organization): 409 `item-exists`; an unknown role: 400. A person gets a random initial
/// password, a machine user an API key, in the answer only.
#[utoipa::path(post, path = "/be/v1/users", tag = "users", request_body = UserIn,
    responses((status = 200, description = "The new user and its credential", body = UserCreated)),
    extensions(("x-rockit-auth" = json!("beUsers:C"))))]
async fn post_user(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<UserIn>,
) -> ApiResult<Reply<UserCreated>> {
    let u = users_domain::create(&st, &c, b).await?;
    Ok(Reply(UserCreated {
        status: Success,
        user: UserView::of(&u.user, &u.roles),
        initial_pw: u.initial_pw,
        api_key: u.api_key,
    }))
}

const USER_LIST: ListSpec = ListSpec {
    filters: &["username", "type"],
    order_fields: &["username", "created", "updated", "type"],
    default_order: ("username", false),
    unique: "username",
};

page!(
    /// A page of users.
    UserPage,
    "users",
    UserView
);

/// List users
///
/// Order by `username` (default), `created`, `updated` or `type`.
#[utoipa::path(get, path = "/be/v1/users", tag = "users",
    params(
        ListParams,
        ("username" = Option<String>, Query, description = "Only users whose username contains this (any case)"),
        ("type" = Option<UserType>, Query, description = "Only persons (`user`) or only machine users (`machine`)"),
    ),
    responses((status = 200, description = "A page of users", body = UserPage)),
    extensions(("x-rockit-auth" = json!("beUsers:R"))))]
async fn list_users(
    c: Caller,
    State(st): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<UserPage>> {
    let q = ListQuery::parse(raw.as_deref(), &USER_LIST)?;
    if let Some(t) = q.filters.get("type") {
        if t != "user" && t != "machine" {
            return Err(ApiError::invalid("type", "type must be user or machine"));
        }
    }
    c.require(Resource::BeUsers, R)?;
    let mut conn = st.db.conn().await?;
    let needle = q.filters.get("username").map(|s| s.to_lowercase());
    let items = users::members(&mut conn, &c.org_id)
        .await?
        .into_iter()
        .filter(|(u, _)| needle.as_ref().is_none_or(|n| u.username.to_lowercase().contains(n)))
        .filter(|(u, _)| q.filters.get("type").is_none_or(|t| *t == u.kind))
        .map(|(u, r)| UserView::of(&u, &r))
        .collect();
    q.page_of(items)
}

/// One user.
#[derive(Serialize, ToSchema)]
pub struct UserReply {
    /// Always `success`.
    status: Success,
    /// The user (projected to `fields[]` when given).
    #[schema(value_type = UserView)]
    user: Value,
}

/// One user
///
/// A member of the caller's organization; anyone may read their own record, another
/// member's needs `beUsers` Read. Not a member: 404.
#[utoipa::path(get, path = "/be/v1/users/{username}", tag = "users", params(FieldsParam),
    responses((status = 200, description = "The user", body = UserReply)),
    extensions(("x-rockit-auth" = json!("beUsers:R or own"))))]
async fn get_user(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(username): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Reply<UserReply>> {
    if username != c.username {
        c.require(Resource::BeUsers, R)?;
    }
    let mut conn = st.db.conn().await?;
    let u = users::member_by_username(&mut conn, &c.org_id, &username)
        .await?
        .ok_or_else(|| ApiError::not_found("user", &username))?;
    let names = users::role_names(&mut conn, &c.org_id, &u.id).await?;
    Ok(Reply(UserReply {
        status: Success,
        user: projected(&UserView::of(&u, &names), raw.as_deref())?,
    }))
}

/// The Change User body: the user by username (default the caller), and what changes.
/// Fields left out stay as they are.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserPatch {
    /// The member to change; default the caller.
    username: Option<String>,
    /// A person's new e-mail address.
    #[schema(
        max_length = 254,
        pattern = "^[^@\\s\\x00-\\x1f\\x7f-\\x9f]+@[A-Za-z0-9-]+(\\.[A-Za-z0-9-]+)+$"
    )]
    email: Option<String>,
    /// A person's new first name, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    firstname: Option<String>,
    /// A person's new surname, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    surname: Option<String>,
    /// A new title, 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    title: Option<String>,
    /// A machine user's new description, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    label: Option<String>,
    /// The complete new set of role names (replaces the old one); needs `beUsers` Update.
    roles: Option<Vec<String>>,
    /// The caller's current password; goes with `newPW`.
    #[serde(rename = "oldPW")]
    old_pw: Option<String>,
    /// The caller's new password: 10 to 256 characters, not containing the username, not a
    /// common one. Only one's own; goes with `oldPW`.
    #[serde(rename = "newPW")]
    #[schema(min_length = 10, max_length = 256)]
    new_pw: Option<String>,
    /// Replace the user's credentials: a person gets a new random password, a machine
    /// user a new API key (its other keys are revoked); every session of the user ends.
    /// Needs `beUsers` = 15.
    #[serde(rename = "resetCreds")]
    reset_creds: Option<bool>,
}

/// A user as changed, with a credential made by `resetCreds`.
#[derive(Serialize, ToSchema)]
pub struct UserChanged {
    /// Always `success`.
    status: Success,
    /// The user as it is now.
    user: UserView,
    /// The person's new random password (`resetCreds`), shown this once.
    #[serde(rename = "newPW", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    new_pw: Option<String>,
    /// The machine user's new API key (`resetCreds`), shown this once.
    #[serde(rename = "apiKey", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    api_key: Option<String>,
}

/// Change a user (profile, password, roles, resetCreds)
///
/// One's own profile and password need no permission; anything about another member, and
/// any role change, needs `beUsers` Update. The target must hold no permission the caller
/// lacks; a person who belongs to other organizations too changes their profile and
/// credentials only themselves (403). New roles may grant only permissions the caller
/// holds (403). A wrong `oldPW`: 401; the password changed meanwhile: 409 `invalid-state`.
/// Taking `Administrators` from the organization's last administrator: 409
/// `item-protected`. A new password ends the user's other sessions.
#[utoipa::path(patch, path = "/be/v1/users", tag = "users", request_body = UserPatch,
    responses((status = 200, description = "The user as changed", body = UserChanged)),
    extensions(("x-rockit-auth" = json!("own, or beUsers:U"))))]
async fn patch_user(
    c: Caller,
    State(st): State<Arc<AppState>>,
    JsonBody(b): JsonBody<UserPatch>,
) -> ApiResult<Reply<UserChanged>> {
    let change = UserChange {
        username: b.username,
        email: b.email,
        firstname: b.firstname,
        surname: b.surname,
        title: b.title,
        label: b.label,
        roles: b.roles,
        old_pw: b.old_pw,
        new_pw: b.new_pw,
        reset_creds: b.reset_creds.unwrap_or(false),
    };
    let u = users_domain::change::update(&st, &c, change).await?;
    Ok(Reply(UserChanged {
        status: Success,
        user: UserView::of(&u.user, &u.roles),
        new_pw: u.new_pw,
        api_key: u.api_key,
    }))
}

/// Remove a user from the organization
///
/// Its roles, API keys and sessions in this organization go; a user that belongs to no
/// other organization (a machine user always) is deleted. The target must hold no
/// permission the caller lacks (403); the last administrator cannot go (409
/// `item-protected`).
#[utoipa::path(delete, path = "/be/v1/users/{username}", tag = "users",
    responses((status = 200, description = "Removed", body = Message)),
    extensions(("x-rockit-auth" = json!("beUsers:D"))))]
async fn delete_user(
    c: Caller,
    State(st): State<Arc<AppState>>,
    Path(username): Path<String>,
) -> ApiResult<Reply<Message>> {
    users_domain::delete(&st, &c, &username).await?;
    Ok(Message::new("user deleted"))
}

/// The operations of this module, for `/openapi.json`.
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_users, post_user, get_user, patch_user, delete_user))]
pub struct Api;

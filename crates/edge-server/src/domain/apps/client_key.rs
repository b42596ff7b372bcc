//! An app's client key, the one launchers open play sessions with: rotated on demand, the
//! old one refused at once.

use super::new_client_key;
use crate::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::perms::{Resource, U};
use crate::state::AppState;
use crate::store::apps;

/// Gives the caller's app `name` a fresh client key (`keys: Update`), sealed at rest, and
/// answers it: the only time it is shown in the clear besides reads with `keys: Read`. 404
/// for an unknown app. Play sessions opened with the old key keep their own tokens.
pub(crate) async fn rotate(st: &AppState, c: &Caller, name: &str) -> ApiResult<String> {
    c.require(Resource::Keys, U)?;
    let key = new_client_key();
    let mut tx = st.db.tx().await?;
    if !apps::set_client_key(&mut tx, &c.org_id, name, &st.data_key.seal(key.as_bytes())).await? {
        return Err(ApiError::not_found("app", name));
    }
    tx.commit().await?;
    tracing::info!(org = %c.org_name, app = %name, "client key rotated");
    Ok(key)
}

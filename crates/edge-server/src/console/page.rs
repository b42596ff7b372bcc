//! What every console page shares: the frame around it (navigation by permission, the
//! signed-in user, the CSRF token), rendering, the error page, and the formats of sizes
//! and times.

use super::failure::Failure;
use super::viewer::{May, Viewer};
use crate::error::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// One link of the navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

/// The frame of a signed-in page.
pub struct Chrome {
    pub title: String,
    pub org: String,
    pub user: String,
    pub csrf: String,
    pub nav: Vec<NavItem>,
    pub may: May,
}

impl Chrome {
    /// The frame for `v`, with `section` (an href of the navigation) marked current. A
    /// section the viewer cannot read is not linked.
    pub fn new(v: &Viewer, title: impl Into<String>, section: &str) -> Chrome {
        let may = v.may();
        let mut nav = vec![NavItem { href: "/console/", label: "Overview", current: false }];
        if may.deployments_read {
            nav.push(NavItem {
                href: "/console/deployments",
                label: "Deployments",
                current: false,
            });
        }
        if v.can(crate::perms::Resource::Subscriptions, crate::perms::R) {
            nav.push(NavItem { href: "/console/webhooks", label: "Webhooks", current: false });
        }
        if may.users_read {
            nav.push(NavItem { href: "/console/people", label: "People", current: false });
        }
        nav.push(NavItem { href: "/console/org", label: "Organization", current: false });
        if v.caller.operator && v.can(crate::perms::Resource::Orgs, crate::perms::R) {
            nav.push(NavItem { href: "/console/operator", label: "Operator", current: false });
        }
        for n in &mut nav {
            n.current = n.href == section;
        }
        Chrome {
            title: title.into(),
            org: v.caller.org_name.clone(),
            user: v.caller.username.clone(),
            csrf: v.csrf.clone(),
            nav,
            may,
        }
    }
}

/// Renders `t` as an HTML answer with `status`.
pub fn render(status: StatusCode, t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => Failure(ApiError::internal(format!("template: {e}"))).into_response(),
    }
}

/// What a page handler answers.
pub type PageResult = Result<Response, Failure>;

/// Bytes in the units people read (`1.5 MB`).
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

/// How long ago `ms` (UNIX milliseconds) was, in words (`5 min ago`).
pub fn age(ms: i64) -> String {
    let s = (crate::util::now_ms() - ms).max(0) / 1000;
    match s {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// A time as people read it in a table: `2026-12-07 14:03` (UTC).
pub fn when(ms: i64) -> String {
    let t = crate::util::rfc3339(ms);
    t.get(..16).map(|s| s.replace('T', " ")).unwrap_or(t)
}

/// How many rows a list shows per page.
pub const PAGE_ROWS: usize = 50;

/// One page of a long list: which rows, and the links to the pages around it.
pub struct Pager {
    /// 1-based.
    pub page: usize,
    pub pages: usize,
    /// `?page=N` of the previous and next pages, when there are.
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// The page asked for (`?page=N`, clamped) of a list of `total` rows, and the range of
    /// rows on it.
    pub fn of(page: Option<usize>, total: usize) -> (Pager, std::ops::Range<usize>) {
        let pages = total.div_ceil(PAGE_ROWS).max(1);
        let page = page.unwrap_or(1).clamp(1, pages);
        let start = (page - 1) * PAGE_ROWS;
        let link = |p: usize| format!("?page={p}");
        let pager = Pager {
            page,
            pages,
            prev: (page > 1).then(|| link(page - 1)),
            next: (page < pages).then(|| link(page + 1)),
        };
        (pager, start..(start + PAGE_ROWS).min(total))
    }
}

/// The `?page=N` of a list page.
#[derive(serde::Deserialize, Default)]
pub struct PageQuery {
    pub page: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_clamps_and_links() {
        let (p, r) = Pager::of(None, 120);
        assert_eq!((p.page, p.pages, r), (1, 3, 0..50));
        assert_eq!((p.prev, p.next.as_deref()), (None, Some("?page=2")));
        let (p, r) = Pager::of(Some(3), 120);
        assert_eq!((r, p.prev.as_deref(), p.next), (100..120, Some("?page=2"), None));
        let (p, r) = Pager::of(Some(99), 120);
        assert_eq!((p.page, r), (3, 100..120), "past the end: the last page");
        let (p, r) = Pager::of(Some(0), 0);
        assert_eq!((p.page, p.pages, r), (1, 1, 0..0));
    }
}

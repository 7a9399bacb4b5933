//! The hand-rolled router: a path becomes a `Route` by matching its segments.
//!
//! Routing is two steps so that 404 and 405 are decided once for every route: `resolve` finds the
//! route from the path alone, then the dispatcher matches the method against it and answers 405
//! with the route's `Allow` list.

/// Every path the service knows, plus `Unmatched` for all others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Ready,
    Metrics,
    OpenApi,
    Users,
    /// `/v1/users/{id}`, with the id segment as sent (not yet validated).
    User(&'a str),
    Unmatched,
}

/// Each route's template, by `Route::index`: what `/metrics` labels requests with (and its length,
/// how many routes there are, sizes the arrays of per-route counters).
pub(crate) const TEMPLATES: [&str; 7] = [
    "/health",
    "/ready",
    "/metrics",
    "/openapi.json",
    "/v1/users",
    "/v1/users/{id}",
    "unmatched",
];

impl Route<'_> {
    /// The path template, as `/metrics` labels it.
    pub fn template(self) -> &'static str {
        TEMPLATES[self.index()]
    }

    /// The methods the route takes, as the `Allow` header lists them. GET routes answer HEAD too.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Health | Route::Ready | Route::Metrics | Route::OpenApi => "GET, HEAD",
            Route::Users => "GET, HEAD, POST",
            Route::User(_) => "GET, HEAD, PATCH, DELETE",
            Route::Unmatched => "",
        }
    }

    /// Position in `TEMPLATES`, for arrays of per-route counters.
    pub(crate) fn index(self) -> usize {
        match self {
            Route::Health => 0,
            Route::Ready => 1,
            Route::Metrics => 2,
            Route::OpenApi => 3,
            Route::Users => 4,
            Route::User(_) => 5,
            Route::Unmatched => 6,
        }
    }
}

/// The route of a path.
pub fn resolve(path: &str) -> Route<'_> {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("health"), None, None, None) => Route::Health,
        (Some("ready"), None, None, None) => Route::Ready,
        (Some("metrics"), None, None, None) => Route::Metrics,
        (Some("openapi.json"), None, None, None) => Route::OpenApi,
        (Some("v1"), Some("users"), None, None) => Route::Users,
        (Some("v1"), Some("users"), Some(id), None) if !id.is_empty() => Route::User(id),
        _ => Route::Unmatched,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_routes() {
        let cases = [
            ("/health", Route::Health),
            ("/ready", Route::Ready),
            ("/metrics", Route::Metrics),
            ("/openapi.json", Route::OpenApi),
            ("/v1/users", Route::Users),
            ("/v1/users/abc", Route::User("abc")),
            ("/", Route::Unmatched),
            ("/v1/users/", Route::Unmatched),
            ("/v1/users/abc/extra", Route::Unmatched),
            ("/health/", Route::Unmatched),
            ("/v2/users", Route::Unmatched),
            ("/V1/USERS", Route::Unmatched),
            ("//health", Route::Unmatched),
        ];
        for (path, route) in cases {
            assert_eq!(resolve(path), route, "{path}");
        }
    }

    #[test]
    fn templates_are_distinct_and_indexes_match_them() {
        let routes = [
            Route::Health,
            Route::Ready,
            Route::Metrics,
            Route::OpenApi,
            Route::Users,
            Route::User("x"),
            Route::Unmatched,
        ];
        for (position, route) in routes.iter().enumerate() {
            assert_eq!(route.index(), position);
            assert_eq!(route.template(), TEMPLATES[position]);
        }
        let mut templates = TEMPLATES.to_vec();
        templates.sort_unstable();
        templates.dedup();
        assert_eq!(templates.len(), TEMPLATES.len());
    }
}

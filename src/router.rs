//! The hand-rolled router: a path becomes a `Route` by matching its segments.
//!
//! Routing is two steps so that 404 and 405 are decided once for every route: `resolve` finds the
//! route from the path alone, then the dispatcher matches the method against it and answers 405
//! with the route's `Allow` list. A `Route` also names its template, the label `/metrics` counts by.

/// Every path the service knows, plus `Unmatched` for all others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Metrics,
    OpenApi,
    Users,
    User,
    Unmatched,
}

impl Route {
    pub const ALL: [Route; 7] = [
        Route::Health,
        Route::Ready,
        Route::Metrics,
        Route::OpenApi,
        Route::Users,
        Route::User,
        Route::Unmatched,
    ];

    /// The path template, as `/metrics` labels it.
    pub fn template(self) -> &'static str {
        match self {
            Route::Health => "/health",
            Route::Ready => "/ready",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Users => "/v1/users",
            Route::User => "/v1/users/{id}",
            Route::Unmatched => "unmatched",
        }
    }

    /// The methods the route takes, as the `Allow` header lists them. GET routes answer HEAD too.
    pub fn allow(self) -> &'static str {
        match self {
            Route::Health | Route::Ready | Route::Metrics | Route::OpenApi => "GET, HEAD",
            Route::Users => "GET, HEAD, POST",
            Route::User => "GET, HEAD, PATCH, DELETE",
            Route::Unmatched => "",
        }
    }

    /// Position in `ALL`, for arrays of per-route counters.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The route of a path and, for `/v1/users/{id}`, the id segment (not yet validated).
pub fn resolve(path: &str) -> (Route, &str) {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/');
    let route = match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some("health"), None, None, None) => Route::Health,
        (Some("ready"), None, None, None) => Route::Ready,
        (Some("metrics"), None, None, None) => Route::Metrics,
        (Some("openapi.json"), None, None, None) => Route::OpenApi,
        (Some("v1"), Some("users"), None, None) => Route::Users,
        (Some("v1"), Some("users"), Some(id), None) if !id.is_empty() => return (Route::User, id),
        _ => Route::Unmatched,
    };
    (route, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_routes() {
        let cases = [
            ("/health", Route::Health, ""),
            ("/ready", Route::Ready, ""),
            ("/metrics", Route::Metrics, ""),
            ("/openapi.json", Route::OpenApi, ""),
            ("/v1/users", Route::Users, ""),
            ("/v1/users/abc", Route::User, "abc"),
            ("/", Route::Unmatched, ""),
            ("/v1/users/", Route::Unmatched, ""),
            ("/v1/users/abc/extra", Route::Unmatched, ""),
            ("/health/", Route::Unmatched, ""),
            ("/v2/users", Route::Unmatched, ""),
            ("/V1/USERS", Route::Unmatched, ""),
            ("//health", Route::Unmatched, ""),
        ];
        for (path, route, id) in cases {
            assert_eq!(resolve(path), (route, id), "{path}");
        }
    }

    #[test]
    fn templates_are_distinct_and_indexes_match_all() {
        for (position, route) in Route::ALL.iter().enumerate() {
            assert_eq!(route.index(), position);
        }
        let mut templates: Vec<_> = Route::ALL.iter().map(|route| route.template()).collect();
        templates.dedup();
        assert_eq!(templates.len(), Route::ALL.len());
    }
}

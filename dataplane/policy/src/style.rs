//! Where parameters live and how their values are laid out (OpenAPI `in` and `style`).

use serde::Serialize;

/// Where a parameter is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamIn {
    /// A path template expression.
    Path,
    /// The query string.
    Query,
    /// A request header.
    Header,
    /// A cookie in the `Cookie` header.
    Cookie,
}

impl ParamIn {
    pub(crate) fn parse(s: &str) -> Option<ParamIn> {
        match s {
            "path" => Some(ParamIn::Path),
            "query" => Some(ParamIn::Query),
            "header" => Some(ParamIn::Header),
            "cookie" => Some(ParamIn::Cookie),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ParamIn::Path => "path",
            ParamIn::Query => "query",
            ParamIn::Header => "header",
            ParamIn::Cookie => "cookie",
        }
    }
}

/// How values are laid out (OpenAPI `style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Simple,
    Label,
    Matrix,
    Form,
    SpaceDelimited,
    PipeDelimited,
    DeepObject,
}

impl Style {
    /// The style named `s`, if it is allowed for parameters in `at`.
    pub(crate) fn parse(s: &str, at: ParamIn) -> Option<Style> {
        let style = match s {
            "simple" => Style::Simple,
            "label" => Style::Label,
            "matrix" => Style::Matrix,
            "form" => Style::Form,
            "spaceDelimited" => Style::SpaceDelimited,
            "pipeDelimited" => Style::PipeDelimited,
            "deepObject" => Style::DeepObject,
            _ => return None,
        };
        let ok = match at {
            ParamIn::Path => matches!(style, Style::Simple | Style::Label | Style::Matrix),
            ParamIn::Query => matches!(
                style,
                Style::Form | Style::SpaceDelimited | Style::PipeDelimited | Style::DeepObject
            ),
            ParamIn::Header => style == Style::Simple,
            ParamIn::Cookie => style == Style::Form,
        };
        ok.then_some(style)
    }

    pub(crate) fn default_for(at: ParamIn) -> Style {
        match at {
            ParamIn::Path | ParamIn::Header => Style::Simple,
            ParamIn::Query | ParamIn::Cookie => Style::Form,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_are_allowed_only_where_openapi_allows_them() {
        assert_eq!(Style::parse("matrix", ParamIn::Path), Some(Style::Matrix));
        assert_eq!(Style::parse("matrix", ParamIn::Query), None);
        assert_eq!(
            Style::parse("deepObject", ParamIn::Query),
            Some(Style::DeepObject)
        );
        assert_eq!(Style::parse("form", ParamIn::Header), None);
        assert_eq!(Style::parse("simple", ParamIn::Cookie), None);
        assert_eq!(Style::default_for(ParamIn::Query), Style::Form);
        assert_eq!(Style::default_for(ParamIn::Header), Style::Simple);
        assert_eq!(ParamIn::parse("cookie"), Some(ParamIn::Cookie));
        assert_eq!(ParamIn::parse("body"), None);
    }
}

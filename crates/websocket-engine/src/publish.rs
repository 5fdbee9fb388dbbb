//! `SetHandler websocket-publish`: any backend publishes to a channel with
//! an HTTP POST to `<location>/<channel>`; the body is the message. Who
//! may publish is Apache's business (`Require`, auth modules), decided
//! before this handler runs.

use std::os::raw::c_int;

use httpd::conn::{BodyError, Request};
use httpd::sys;
use websocket_channels::{ChannelName, Kind};

use crate::channels::{self, PublishError};
use crate::config::DirConfig;

/// The channel a POST names: what follows the location's path
/// (`/publish/lobby` under `<Location /publish>`), or, where the section is
/// not a URL prefix (`<LocationMatch>`, `<Directory>`), the last segment.
fn channel_part<'u>(uri: &'u str, section: Option<&str>) -> &'u str {
    if let Some(section) = section.map(|s| s.trim_end_matches('/')) {
        if let Some(rest) = uri.strip_prefix(section) {
            if rest.is_empty() {
                return "";
            }
            if let Some(rest) = rest.strip_prefix('/') {
                return rest;
            }
        }
    }
    uri.rsplit('/').next().unwrap_or("")
}

/// Text for `text/*` and JSON media types, binary otherwise.
fn kind_of(content_type: Option<&str>) -> Kind {
    let Some(ct) = content_type else {
        return Kind::Binary;
    };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media.starts_with("text/") || media == "application/json" || media.ends_with("+json") {
        Kind::Text
    } else {
        Kind::Binary
    }
}

/// Refuses with `status`, saying why in the log and in the error page.
fn refuse(r: Request<'_>, module_index: c_int, status: c_int, why: &str) -> c_int {
    crate::rlog!(
        r,
        module_index,
        sys::APLOG_INFO as c_int,
        "refusing publish to {}: {why}",
        r.uri()
    );
    // Apache's 400 page shows this note; it is escaped as any text in HTML.
    let escaped = why
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    r.notes().set("error-notes", &escaped);
    status
}

/// Answers one publish request.
pub fn handler(r: Request<'_>, module_index: c_int, conf: Option<&DirConfig>) -> c_int {
    if r.method() != "POST" {
        r.answer_allows_post();
        return sys::HTTP_METHOD_NOT_ALLOWED as c_int;
    }
    let part = channel_part(r.uri(), conf.and_then(|c| c.section.as_deref()));
    let name = match ChannelName::new(part.as_bytes()) {
        Ok(name) => name,
        Err(e) => return refuse(r, module_index, sys::HTTP_BAD_REQUEST as c_int, &e.to_string()),
    };
    let Some(bus) = channels::bus() else {
        return refuse(
            r,
            module_index,
            sys::HTTP_SERVICE_UNAVAILABLE as c_int,
            "channels are not set up",
        );
    };
    let max_message = conf.map_or(
        crate::config::DEFAULT_MAX_MESSAGE_SIZE,
        DirConfig::max_message_size,
    );
    let limit = usize::try_from(max_message)
        .unwrap_or(usize::MAX)
        .min(bus.max_message());
    let body = match r.read_body(limit) {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return refuse(
                r,
                module_index,
                sys::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int,
                &format!("the body is larger than {limit} bytes"),
            )
        }
        Err(BodyError::Refused(status)) => return status,
        Err(BodyError::Read) => {
            return refuse(
                r,
                module_index,
                sys::HTTP_BAD_REQUEST as c_int,
                "the body could not be read",
            )
        }
    };
    let kind = kind_of(r.headers_in().get("Content-Type"));
    match channels::publish(&name, kind, &body) {
        Ok(()) => {
            crate::rlog!(
                r,
                module_index,
                sys::APLOG_DEBUG as c_int,
                "published {} bytes of {} to channel {name}",
                body.len(),
                if kind == Kind::Text { "text" } else { "binary" }
            );
            sys::HTTP_NO_CONTENT as c_int
        }
        Err(PublishError::InvalidText) => refuse(
            r,
            module_index,
            sys::HTTP_BAD_REQUEST as c_int,
            "the body of a text content type is not valid UTF-8",
        ),
        Err(PublishError::TooLarge { max }) => refuse(
            r,
            module_index,
            sys::HTTP_REQUEST_ENTITY_TOO_LARGE as c_int,
            &format!("the body is larger than {max} bytes"),
        ),
        Err(PublishError::NoChannels) => refuse(
            r,
            module_index,
            sys::HTTP_SERVICE_UNAVAILABLE as c_int,
            "channels are not set up",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_channel_follows_the_location() {
        assert_eq!(channel_part("/publish/lobby", Some("/publish")), "lobby");
        assert_eq!(channel_part("/publish/lobby", Some("/publish/")), "lobby");
        assert_eq!(channel_part("/publish", Some("/publish")), "");
        assert_eq!(channel_part("/publish/", Some("/publish")), "");
        assert_eq!(channel_part("/publish/a/b", Some("/publish")), "a/b");
        // A regex or a directory: the last segment.
        assert_eq!(channel_part("/pub/x/news", Some("^/pub/[a-z]+")), "news");
        assert_eq!(channel_part("/feed/news", None), "news");
        assert_eq!(channel_part("/publisher/x", Some("/publish")), "x");
    }

    #[test]
    fn text_for_text_and_json() {
        for t in [
            "text/plain",
            "text/html; charset=utf-8",
            "application/json",
            "application/ld+json",
            "TEXT/Plain",
        ] {
            assert_eq!(kind_of(Some(t)), Kind::Text, "{t}");
        }
        for b in [
            "application/octet-stream",
            "application/x-www-form-urlencoded",
            "image/png",
            "",
        ] {
            assert_eq!(kind_of(Some(b)), Kind::Binary, "{b}");
        }
        assert_eq!(kind_of(None), Kind::Binary);
    }
}

//! The bot stage (`[bots]`): the User-Agent against the operator's rule file, right after the
//! cheap structural checks, so a known scanner is refused before it costs anything else.
//! `block` answers 403 `bot_blocked`; `log` lets the request on. Either way the audit line
//! names the rule (`"bot":"sqlmap"`), never the header's value.

use bytes::Bytes;
use http::{StatusCode, request::Parts};

use super::stage::{Outcome, Rejection, RequestCtx, SyncStage};
use crate::config::{BotAction, BotList, BotsConfig};

/// How a request without a User-Agent is named in the audit line.
const MISSING: &str = "(no user-agent)";

#[derive(Debug)]
pub(crate) struct Bots {
    list: BotList,
    action: BotAction,
    missing: bool,
}

impl Bots {
    pub fn new(cfg: &BotsConfig, list: BotList) -> Self {
        Self {
            list,
            action: cfg.action,
            missing: cfg.missing,
        }
    }
}

impl SyncStage for Bots {
    fn name(&self) -> &'static str {
        "bots"
    }

    fn check(&self, ctx: &mut RequestCtx, head: &mut Parts, _body: Option<&Bytes>) -> Outcome {
        let ua = head
            .headers
            .get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        let rule = match ua.as_deref() {
            None | Some("") if self.missing => Some(MISSING.to_owned()),
            None | Some("") => None,
            Some(ua) => self.list.matching(ua).map(str::to_owned),
        };
        let Some(rule) = rule else {
            return Outcome::Continue;
        };
        ctx.bot = Some(rule);
        match self.action {
            BotAction::Log => Outcome::Continue,
            BotAction::Block => Outcome::Respond(
                Rejection::new(StatusCode::FORBIDDEN, "bot_blocked")
                    .at(Some("header.user-agent".to_owned()), None),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run(stage: &Bots, ua: Option<&str>) -> (Outcome, Option<String>) {
        let mut b = http::Request::get("/");
        if let Some(ua) = ua {
            b = b.header("user-agent", ua);
        }
        let (mut head, ()) = b.body(()).unwrap().into_parts();
        let mut ctx = super::super::test_ctx("198.18.0.1:1000".parse().unwrap());
        let out = stage.check(&mut ctx, &mut head, None);
        (out, ctx.bot)
    }

    fn stage(action: BotAction, missing: bool) -> Bots {
        let cfg = BotsConfig {
            file: "bots.txt".into(),
            action,
            missing,
        };
        Bots::new(&cfg, BotList::parse("sqlmap\n/^nikto/\n").unwrap())
    }

    #[test]
    fn a_listed_agent_is_refused_or_logged_and_others_pass() {
        let (out, bot) = run(&stage(BotAction::Block, false), Some("sqlmap/1.7"));
        assert!(matches!(out, Outcome::Respond(r) if r.reason == "bot_blocked"));
        assert_eq!(bot.as_deref(), Some("sqlmap"));
        let (out, bot) = run(&stage(BotAction::Log, false), Some("Nikto/2.5"));
        assert_eq!(out, Outcome::Continue);
        assert_eq!(bot.as_deref(), Some("/^nikto/"));
        let (out, bot) = run(&stage(BotAction::Block, false), Some("curl/8.5.0"));
        assert_eq!((out, bot), (Outcome::Continue, None));
    }

    #[test]
    fn a_missing_agent_matches_only_when_asked() {
        assert_eq!(
            run(&stage(BotAction::Block, false), None).0,
            Outcome::Continue
        );
        let (out, bot) = run(&stage(BotAction::Block, true), None);
        assert!(matches!(out, Outcome::Respond(_)));
        assert_eq!(bot.as_deref(), Some(MISSING));
        assert!(matches!(
            run(&stage(BotAction::Block, true), Some("")).0,
            Outcome::Respond(_)
        ));
    }
}

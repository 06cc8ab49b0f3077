//! One vocabulary for what a learner does against forgetting: the names the command line,
//! the reports, the board profiles, the sweep, the Linux runtime's config and the device
//! config all use, parsed in one place ([`Strategy::parse`], [`core::str::FromStr`]).
//!
//! ```
//! use edgecl::learner::strategy::{PenaltyKind, Strategy};
//!
//! let s: Strategy = "packnet+si".parse().unwrap();
//! assert_eq!(s, Strategy::PackNet(Some(PenaltyKind::Si)));
//! assert_eq!(s.to_string(), "packnet+si");
//! assert!("packnet+progressive".parse::<Strategy>().is_err());
//! ```

use core::fmt;
use core::str::FromStr;

/// The importance penalties (the core's [`crate::learner::Method`]s by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PenaltyKind {
    /// EWC with a slot per task.
    Ewc,
    /// Online EWC.
    OnlineEwc,
    /// Synaptic intelligence.
    Si,
    /// Memory aware synapses.
    Mas,
}

impl PenaltyKind {
    /// Every penalty, in the order the names list them.
    pub const ALL: [PenaltyKind; 4] = [
        PenaltyKind::Ewc,
        PenaltyKind::OnlineEwc,
        PenaltyKind::Si,
        PenaltyKind::Mas,
    ];

    /// Name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PenaltyKind::Ewc => "ewc",
            PenaltyKind::OnlineEwc => "online-ewc",
            PenaltyKind::Si => "si",
            PenaltyKind::Mas => "mas",
        }
    }

    /// The penalty a name gives.
    pub fn from_name(s: &str) -> Option<PenaltyKind> {
        PenaltyKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// Whether it estimates importance from a pass over the task's samples (EWC, online
    /// EWC, MAS); SI measures it while training.
    pub fn needs_samples(self) -> bool {
        self != PenaltyKind::Si
    }
}

/// What a run does against forgetting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    /// Fine-tuning: each task trained on its own data only (the lower bound).
    Naive,
    /// Each task trained on the data of every task so far (the upper bound; the old data
    /// is kept by the host, outside the arena, which no device could do).
    Joint,
    /// Fine-tuning under an importance penalty.
    Penalty(PenaltyKind),
    /// PackNet's per-task weight ownership, optionally with a penalty on the free weights.
    PackNet(Option<PenaltyKind>),
    /// Progressive columns: a frozen column per task with lateral connections (task-IL).
    Progressive,
    /// Replay of old classes from a generator, optionally with a penalty.
    Replay(Option<PenaltyKind>),
    /// PackNet's weight ownership with replay: each task trains its free weights on its
    /// samples and replayed old ones over every class seen, and without task labels the
    /// newest mask (every task's weights) predicts over every class seen.
    PackNetReplay,
}

/// Why a strategy name was refused; it shows the text it refused (cut at
/// [`StrategyError::SHOWN`] bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyError {
    kind: Refusal,
    text: heapless::String<{ StrategyError::SHOWN }>,
    cut: bool,
}

/// The reasons a strategy name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A part names no strategy (the text shown is that part).
    Unknown,
    /// Two parts that do not combine.
    DoNotCombine,
    /// More than two parts.
    TooMany,
}

impl StrategyError {
    /// Bytes of the refused text the message shows.
    pub const SHOWN: usize = 48;

    fn new(kind: Refusal, text: &str) -> StrategyError {
        let mut shown = heapless::String::new();
        let mut cut = false;
        for c in text.chars() {
            if shown.push(c).is_err() {
                cut = true;
                break;
            }
        }
        StrategyError { kind, text: shown, cut }
    }

    /// Why it was refused.
    pub fn refusal(&self) -> Refusal {
        self.kind
    }

    fn shown(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for StrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, cut) = (self.shown(), if self.cut { "..." } else { "" });
        match self.kind {
            Refusal::Unknown => write!(f, "unknown strategy `{text}{cut}`; known: {}", Strategy::NAMES),
            Refusal::DoNotCombine => write!(
                f,
                "`{text}{cut}`: these strategies do not combine (PackNet or replay combine with one penalty: \
                 packnet+si, online-ewc+replay; or with each other: packnet+replay)"
            ),
            Refusal::TooMany => write!(f, "`{text}{cut}`: at most two strategies combine (packnet+si)"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StrategyError {}

impl Strategy {
    /// Known names.
    pub const NAMES: &'static str =
        "naive, joint, ewc, online-ewc, si, mas, packnet (packnet+si, ...), progressive, replay (online-ewc+replay, \
         packnet+replay, ...)";

    /// Parses a strategy name, or a combination `a+b` of components that combine (PackNet
    /// or replay with one penalty, PackNet with replay). `fine-tune` and `finetune` name
    /// [`Strategy::Naive`].
    pub fn parse(s: &str) -> Result<Strategy, StrategyError> {
        let one = |p: &str| match p.trim() {
            "naive" | "fine-tune" | "finetune" => Ok(Strategy::Naive),
            "joint" => Ok(Strategy::Joint),
            "packnet" => Ok(Strategy::PackNet(None)),
            "progressive" => Ok(Strategy::Progressive),
            "replay" => Ok(Strategy::Replay(None)),
            other => PenaltyKind::from_name(other)
                .map(Strategy::Penalty)
                .ok_or_else(|| StrategyError::new(Refusal::Unknown, other)),
        };
        let mut parts = s.split('+');
        let first = one(parts.next().unwrap_or(""))?;
        let Some(second) = parts.next() else {
            return Ok(first);
        };
        if parts.next().is_some() {
            return Err(StrategyError::new(Refusal::TooMany, s));
        }
        use Strategy::{PackNet, Penalty, Replay};
        match (first, one(second)?) {
            (PackNet(None), Penalty(k)) | (Penalty(k), PackNet(None)) => Ok(PackNet(Some(k))),
            (Replay(None), Penalty(k)) | (Penalty(k), Replay(None)) => Ok(Replay(Some(k))),
            (PackNet(None), Replay(None)) | (Replay(None), PackNet(None)) => Ok(Strategy::PackNetReplay),
            _ => Err(StrategyError::new(Refusal::DoNotCombine, s)),
        }
    }

    /// The penalty, alone or beside PackNet or replay.
    pub fn penalty(self) -> Option<PenaltyKind> {
        match self {
            Strategy::Penalty(k) | Strategy::PackNet(Some(k)) | Strategy::Replay(Some(k)) => Some(k),
            _ => None,
        }
    }

    /// Whether PackNet's masks are part of it.
    pub fn packnet(self) -> bool {
        matches!(self, Strategy::PackNet(_) | Strategy::PackNetReplay)
    }

    /// Whether it replays old classes.
    pub fn replays(self) -> bool {
        matches!(self, Strategy::Replay(_) | Strategy::PackNetReplay)
    }

    /// Name in reports (what [`fmt::Display`] writes).
    #[cfg(feature = "std")]
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Naive => f.write_str("naive"),
            Strategy::Joint => f.write_str("joint"),
            Strategy::Penalty(p) => f.write_str(p.name()),
            Strategy::PackNet(None) => f.write_str("packnet"),
            Strategy::PackNet(Some(p)) => write!(f, "packnet+{}", p.name()),
            Strategy::Progressive => f.write_str("progressive"),
            Strategy::Replay(None) => f.write_str("replay"),
            Strategy::Replay(Some(p)) => write!(f, "{}+replay", p.name()),
            Strategy::PackNetReplay => f.write_str("packnet+replay"),
        }
    }
}

impl FromStr for Strategy {
    type Err = StrategyError;

    fn from_str(s: &str) -> Result<Strategy, StrategyError> {
        Strategy::parse(s)
    }
}

impl serde::Serialize for Strategy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Strategy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strategy, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = Strategy;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a strategy ({})", Strategy::NAMES)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Strategy, E> {
                Strategy::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_as_itself() {
        let mut all = [Strategy::Naive; 19];
        let mut n = 0;
        for s in [
            Strategy::Naive,
            Strategy::Joint,
            Strategy::Progressive,
            Strategy::PackNetReplay,
        ]
        .into_iter()
        .chain(PenaltyKind::ALL.into_iter().map(Strategy::Penalty))
        .chain(
            [None]
                .into_iter()
                .chain(PenaltyKind::ALL.map(Some))
                .map(Strategy::PackNet),
        )
        .chain(
            [None]
                .into_iter()
                .chain(PenaltyKind::ALL.map(Some))
                .map(Strategy::Replay),
        ) {
            all[n] = s;
            n += 1;
        }
        assert_eq!(n, 18);
        for s in &all[..n] {
            assert_eq!(Strategy::parse(&s.to_string()), Ok(*s), "{s}");
        }
        assert_eq!(Strategy::parse("fine-tune"), Ok(Strategy::Naive));
        assert_eq!(
            Strategy::parse("si+packnet"),
            Ok(Strategy::PackNet(Some(PenaltyKind::Si)))
        );
        assert_eq!(Strategy::parse("replay+packnet"), Ok(Strategy::PackNetReplay));
    }

    #[test]
    fn refusals_say_why_and_show_the_text() {
        let e = Strategy::parse("ewc+nope").unwrap_err();
        assert_eq!(e.refusal(), Refusal::Unknown);
        assert_eq!(e.shown(), "nope");
        let e = Strategy::parse("ewc+si").unwrap_err();
        assert_eq!((e.refusal(), e.shown()), (Refusal::DoNotCombine, "ewc+si"));
        let e = Strategy::parse("packnet+si+replay").unwrap_err();
        assert_eq!(e.refusal(), Refusal::TooMany);
        let long = "x".repeat(60);
        let e = Strategy::parse(&long).unwrap_err();
        assert_eq!(e.shown().len(), StrategyError::SHOWN);
        assert!(e.cut);
        assert_eq!(Strategy::parse("").unwrap_err().refusal(), Refusal::Unknown);
    }
}

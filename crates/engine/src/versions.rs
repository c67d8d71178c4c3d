//! Every version of a norm, kept: the text as it was on a given day, and what changed.
//!
//! The index holds *records*: one passage per provision per stretch of versions over which
//! its text did not change, with that stretch as its validity range (`valid_from` inclusive,
//! `valid_to` exclusive). A provision unchanged across 58 versions is one record, embedded
//! once; a search in force on a day sees exactly the records of the version in force then,
//! because both indexes filter by validity inside the query.
//!
//! A new version is merged, not appended: the versions already held are rebuilt from the
//! records (the registry lists their dates), the new one is put in its place by the day it
//! took effect (before, between or after the others: files may come in any order), and
//! the records are derived again. Only what differs is written: new records are embedded,
//! records whose range moved keep their vectors and only change their validity.
//!
//! A record's id is its provision's (`{norm}/{provision}`) when it starts with the norm's
//! first known version, and `{norm}/{provision}@{day}` when a later version introduced it,
//! so ids stay stable as later versions arrive.

use std::collections::{BTreeMap, HashMap, HashSet};

use cabildo_core::Passage;
use chrono::NaiveDate;
use serde::Serialize;

use crate::{Engine, Result};

/// Each version's provisions, by the day it took effect, in order, with provision ids
/// (no `@day` suffix).
pub(crate) type Contents = BTreeMap<NaiveDate, Vec<Passage>>;

/// A passage id without the `@YYYY-MM-DD` of a record a later version introduced.
pub fn provision_id(id: &str) -> &str {
    match id.rsplit_once('@') {
        Some((base, day)) if NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok() => base,
        _ => id,
    }
}

fn record_id(provision: &str, from: NaiveDate, first: NaiveDate) -> String {
    if from == first {
        provision.to_string()
    } else {
        format!("{provision}@{from}")
    }
}

/// Whether `p` is in force on `day`.
pub fn covers(p: &Passage, day: NaiveDate) -> bool {
    p.valid_from.is_none_or(|f| f <= day) && p.valid_to.is_none_or(|t| day < t)
}

/// Whether two passages say the same in the same place: the same text up to whitespace
/// (LeyChile re-wraps lines between versions), under the same heading.
fn same_provision(a: &Passage, b: &Passage) -> bool {
    let squeeze = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    a.provision == b.provision
        && a.breadcrumb == b.breadcrumb
        && a.anchor == b.anchor
        && squeeze(&a.text) == squeeze(&b.text)
}

/// The versions held in `records` (a norm's stored passages), one per day in `days`.
pub(crate) fn contents(records: &[Passage], days: &[NaiveDate]) -> Contents {
    let mut out = Contents::new();
    for &day in days {
        let mut version: Vec<Passage> = records
            .iter()
            .filter(|r| covers(r, day))
            .map(|r| Passage {
                id: provision_id(&r.id).to_string(),
                ..r.clone()
            })
            .collect();
        version.sort_by_key(|p| p.ordinal);
        // A listed version without records (a crash between writes) is left out rather than
        // read as "every provision repealed".
        if !version.is_empty() {
            out.insert(day, version);
        }
    }
    out
}

/// The records that hold `contents`, ending at `end` (the day the norm was repealed).
/// A record keeps the text, URL and place of the version that introduced it, and the
/// position of the latest version that holds it.
pub(crate) fn records(contents: &Contents, end: Option<NaiveDate>) -> Vec<Passage> {
    let Some(&first) = contents.keys().next() else {
        return Vec::new();
    };
    let mut open: HashMap<String, Passage> = HashMap::new();
    let mut done = Vec::new();
    for (&day, version) in contents {
        let mut present = HashSet::new();
        for p in version {
            present.insert(p.id.as_str());
            match open.get_mut(&p.id) {
                Some(r) if same_provision(r, p) => r.ordinal = p.ordinal,
                _ => {
                    if let Some(mut r) = open.remove(&p.id) {
                        r.valid_to = Some(day);
                        done.push(r);
                    }
                    let r = Passage {
                        id: record_id(&p.id, day, first),
                        valid_from: Some(day),
                        valid_to: None,
                        ..p.clone()
                    };
                    open.insert(p.id.clone(), r);
                }
            }
        }
        let dropped: Vec<String> = open
            .keys()
            .filter(|k| !present.contains(k.as_str()))
            .cloned()
            .collect();
        for k in dropped {
            if let Some(mut r) = open.remove(&k) {
                r.valid_to = Some(day);
                done.push(r);
            }
        }
    }
    for (_, mut r) in open {
        r.valid_to = end;
        done.push(r);
    }
    done.retain(|r| r.valid_from < r.valid_to || r.valid_to.is_none());
    done.sort_by(|a, b| (a.ordinal, &a.valid_from).cmp(&(b.ordinal, &b.valid_from)));
    done
}

/// What writing new records over stored ones takes.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Records whose vectors must be made (new, or their text changed).
    pub embed: Vec<usize>,
    /// Records whose vectors stay and whose validity changed.
    pub revalidate: Vec<usize>,
    /// Stored records no longer present.
    pub gone: Vec<String>,
}

/// Compares `records` (indexes refer to it) with what is `stored`.
pub(crate) fn changes(stored: &[Passage], records: &[Passage]) -> Changes {
    let by_id: HashMap<&str, &Passage> = stored.iter().map(|p| (p.id.as_str(), p)).collect();
    let mut out = Changes::default();
    for (i, r) in records.iter().enumerate() {
        match by_id.get(r.id.as_str()) {
            Some(old) if same_provision(old, r) => {
                if (old.valid_from, old.valid_to) != (r.valid_from, r.valid_to) {
                    out.revalidate.push(i);
                }
            }
            _ => out.embed.push(i),
        }
    }
    let kept: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    out.gone = stored
        .iter()
        .filter(|p| !kept.contains(p.id.as_str()))
        .map(|p| p.id.clone())
        .collect();
    out
}

/// One version of a norm, as `GET /v1/norms/{id}/versions` and `cabildo history` list it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionInfo {
    /// The day this version took effect.
    pub valid_from: NaiveDate,
    /// The day the next version took effect (or the norm was repealed); absent while in
    /// force.
    pub valid_to: Option<NaiveDate>,
    /// The official URL of this version.
    pub url: Option<String>,
    /// Passages in this version.
    pub provisions: u64,
    /// Provisions this version changed, added or removed relative to the one before
    /// (absent for the first).
    pub changed: Option<Vec<String>>,
}

/// One provision's text in two versions, word by word.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvisionDiff {
    /// The provision ("Artículo 15").
    pub provision: String,
    /// Its id, without a version.
    pub provision_id: String,
    /// `changed`, `added` or `removed`.
    pub status: &'static str,
    /// The day the version with the `to` text took effect (for `removed`: the day it was
    /// dropped).
    pub changed_on: Option<NaiveDate>,
    /// The text on the `from` day.
    pub before: Option<String>,
    /// The text on the `to` day.
    pub after: Option<String>,
    /// The words: unchanged, deleted and inserted runs, in order.
    pub words: Vec<WordChange>,
}

impl ProvisionDiff {
    /// One provision's text on the earlier day (`before`) and on the later one (`after`);
    /// `None` when it has neither.
    fn between(before: Option<&Passage>, after: Option<&Passage>) -> Option<Self> {
        let either = after.or(before)?;
        let (status, changed_on) = match (before, after) {
            (Some(_), Some(a)) => ("changed", a.valid_from),
            (None, Some(a)) => ("added", a.valid_from),
            _ => ("removed", either.valid_to),
        };
        Some(ProvisionDiff {
            provision: either.provision.clone(),
            provision_id: provision_id(&either.id).to_string(),
            status,
            changed_on,
            words: word_changes(
                before.map_or("", |p| p.text.as_str()),
                after.map_or("", |p| p.text.as_str()),
            ),
            before: before.map(|p| p.text.clone()),
            after: after.map(|p| p.text.clone()),
        })
    }
}

/// A run of words in a diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WordChange {
    /// `same`, `deleted` or `inserted`.
    pub op: &'static str,
    /// The words, with their spacing.
    pub text: String,
}

/// The word-by-word changes from `before` to `after`. Words, spaces and punctuation are
/// compared as separate tokens, any spacing as one space; a lone word or space left unchanged between two changes
/// is folded into them, so a rewritten clause reads as one deletion and one insertion
/// instead of a patchwork around every "y" it shares.
pub fn word_changes(before: &str, after: &str) -> Vec<WordChange> {
    static TOKEN: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\w+|\s+|[^\w\s]").expect("regex"));
    // Spacing is not text: line breaks moved by re-wrapping compare (and show) as spaces.
    fn tokens(s: &str) -> Vec<&str> {
        TOKEN
            .find_iter(s)
            .map(|m| match m.as_str() {
                w if w.starts_with(char::is_whitespace) => " ",
                w => w,
            })
            .collect()
    }
    let (a, b) = (tokens(before), tokens(after));
    let mut runs: Vec<(&'static str, String)> = Vec::new();
    for op in similar::capture_diff_slices(similar::Algorithm::Patience, &a, &b) {
        let (tag, old, new) = op.as_tag_tuple();
        let (same, deleted, inserted) = match tag {
            similar::DiffTag::Equal => (a[old].concat(), String::new(), String::new()),
            similar::DiffTag::Delete => (String::new(), a[old].concat(), String::new()),
            similar::DiffTag::Insert => (String::new(), String::new(), b[new].concat()),
            similar::DiffTag::Replace => (String::new(), a[old].concat(), b[new].concat()),
        };
        for (op, text) in [("same", same), ("deleted", deleted), ("inserted", inserted)] {
            if !text.is_empty() {
                runs.push((op, text));
            }
        }
    }
    let words = |s: &str| s.split_whitespace().count();
    let mut out = Vec::new();
    let (mut del, mut ins) = (String::new(), String::new());
    let flush = |out: &mut Vec<WordChange>, del: &mut String, ins: &mut String| {
        for (op, text) in [("deleted", del), ("inserted", ins)] {
            if !text.is_empty() {
                out.push(WordChange {
                    op,
                    text: std::mem::take(text),
                });
            }
        }
    };
    for (i, (op, text)) in runs.iter().enumerate() {
        match *op {
            "same" => {
                let between = (!del.is_empty() || !ins.is_empty())
                    && runs.get(i + 1).is_some_and(|(next, _)| *next != "same")
                    && words(text) <= 1;
                if between {
                    del.push_str(text);
                    ins.push_str(text);
                } else {
                    flush(&mut out, &mut del, &mut ins);
                    out.push(WordChange {
                        op: "same",
                        text: text.clone(),
                    });
                }
            }
            "deleted" => del.push_str(text),
            _ => ins.push_str(text),
        }
    }
    flush(&mut out, &mut del, &mut ins);
    out
}

/// Which of a norm's provisions `wanted` names: an article number ("15", "19") matches
/// the article and its parts ("Artículo 19, N° 4"); other text matches a provision label
/// exactly (case aside).
pub fn provision_matches(provision: &str, wanted: &str) -> bool {
    let wanted = wanted.trim();
    if wanted.chars().all(|c| c.is_ascii_digit()) && !wanted.is_empty() {
        let head = provision.split(',').next().unwrap_or(provision);
        let number: String = head
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return head.split_whitespace().count() >= 2 && number == wanted;
    }
    provision.eq_ignore_ascii_case(wanted)
}

impl Engine {
    /// A norm's passages in force on `day` (default today), in document order, with the
    /// day they are in force on. Without a day, a norm known only in a version due later
    /// (LeyChile's "con modificaciones futuras") shows that version, on its first day.
    pub fn passages_on(
        &self,
        norm_id: &str,
        day: Option<NaiveDate>,
    ) -> Result<(NaiveDate, Vec<Passage>)> {
        let records = self.index().passages_of(norm_id)?;
        let asked = day.unwrap_or_else(cabildo_core::today);
        let on = |d: NaiveDate| -> Vec<Passage> {
            records.iter().filter(|r| covers(r, d)).cloned().collect()
        };
        let now = on(asked);
        if !now.is_empty() || day.is_some() {
            return Ok((asked, now));
        }
        let due = records
            .iter()
            .filter_map(|r| r.valid_from)
            .filter(|f| *f > asked)
            .min();
        Ok(match due {
            Some(first) => (first, on(first)),
            None => (asked, now),
        })
    }

    /// A norm's versions, oldest first, each with the provisions it changed (only those
    /// `article` names, when given: see [`provision_matches`]). Empty for a norm whose
    /// text is undated.
    pub async fn versions(&self, norm_id: &str, article: Option<&str>) -> Result<Vec<VersionInfo>> {
        let held = self.registry().versions(norm_id).await?;
        let records = self.index().passages_of(norm_id)?;
        let wanted = |p: &Passage| article.is_none_or(|a| provision_matches(&p.provision, a));
        let mut out = Vec::with_capacity(held.len());
        for (i, v) in held.iter().enumerate() {
            let valid_to = held.get(i + 1).map(|n| n.effective).or(v.repealed);
            let changed = (i > 0).then(|| {
                let mut names: Vec<String> = Vec::new();
                for r in records.iter().filter(|r| wanted(r)) {
                    let starts = r.valid_from == Some(v.effective);
                    let ends = r.valid_to == Some(v.effective);
                    if (starts || ends) && !names.contains(&r.provision) {
                        names.push(r.provision.clone());
                    }
                }
                names
            });
            out.push(VersionInfo {
                valid_from: v.effective,
                valid_to,
                url: v.official_url.clone(),
                provisions: v.provisions,
                changed,
            });
        }
        Ok(out)
    }

    /// What changed in a norm's provisions (those `article` names, when given) between the
    /// text in force on `from` and the one in force on `to`, word by word.
    pub async fn diff(
        &self,
        norm_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        article: Option<&str>,
    ) -> Result<Vec<ProvisionDiff>> {
        let records = self.index().passages_of(norm_id)?;
        let wanted = |p: &&Passage| article.is_none_or(|a| provision_matches(&p.provision, a));
        let at = |day: NaiveDate| -> Vec<&Passage> {
            records
                .iter()
                .filter(|r| covers(r, day))
                .filter(wanted)
                .collect()
        };
        let (before, after) = (at(from), at(to));
        let before_by: HashMap<&str, &Passage> =
            before.iter().map(|p| (provision_id(&p.id), *p)).collect();
        let after_ids: HashSet<&str> = after.iter().map(|p| provision_id(&p.id)).collect();
        let mut out: Vec<ProvisionDiff> = after
            .iter()
            .filter_map(|a| match before_by.get(provision_id(&a.id)) {
                Some(b) if b.id == a.id => None,
                b => ProvisionDiff::between(b.copied(), Some(a)),
            })
            .collect();
        out.extend(
            before
                .iter()
                .filter(|b| !after_ids.contains(provision_id(&b.id)))
                .filter_map(|b| ProvisionDiff::between(Some(b), None)),
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, text: &str, ordinal: u32) -> Passage {
        Passage {
            ordinal,
            provision: id.into(),
            ..cabildo_core::fixtures::passage(&format!("n/{id}"), "n", text)
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn unchanged_provisions_are_one_record_across_versions() {
        let mut c = Contents::new();
        c.insert(
            day("2005-01-01"),
            vec![p("a1", "uno", 0), p("a2", "voluntario", 1)],
        );
        c.insert(
            day("2012-01-01"),
            vec![p("a1", "uno", 0), p("a2", "voluntario", 1)],
        );
        c.insert(
            day("2023-01-04"),
            vec![
                p("a1", "uno ", 0),
                p("a2", "obligatorio", 1),
                p("a3", "nuevo", 2),
            ],
        );
        let r = records(&c, None);
        let ids: Vec<(&str, Option<NaiveDate>, Option<NaiveDate>)> = r
            .iter()
            .map(|r| (r.id.as_str(), r.valid_from, r.valid_to))
            .collect();
        assert_eq!(
            ids,
            [
                ("n/a1", Some(day("2005-01-01")), None),
                ("n/a2", Some(day("2005-01-01")), Some(day("2023-01-04"))),
                ("n/a2@2023-01-04", Some(day("2023-01-04")), None),
                ("n/a3@2023-01-04", Some(day("2023-01-04")), None),
            ]
        );
        // Rebuilt from the records, every version reads as it was given.
        let days: Vec<NaiveDate> = c.keys().copied().collect();
        let again = contents(&r, &days);
        for (d, v) in &c {
            let texts: Vec<&str> = again[d].iter().map(|p| p.text.as_str()).collect();
            let want: Vec<&str> = v.iter().map(|p| p.text.as_str()).collect();
            assert_eq!(texts.len(), want.len(), "{d}");
        }
        // An older version put in later only adds what it changed.
        let mut c2 = contents(&r, &days);
        c2.insert(
            day("2010-01-01"),
            vec![p("a1", "uno", 0), p("a2", "otro", 1)],
        );
        let r2 = records(&c2, None);
        let ch = changes(&r, &r2);
        let embedded: Vec<&str> = ch.embed.iter().map(|&i| r2[i].id.as_str()).collect();
        assert_eq!(embedded, ["n/a2@2010-01-01", "n/a2@2012-01-01"]);
        assert!(ch.gone.is_empty());
        assert_eq!(ch.revalidate.len(), 1, "a2's first record now ends in 2010");
    }

    #[test]
    fn a_repealed_norm_ends_and_removed_provisions_close() {
        let mut c = Contents::new();
        c.insert(day("2000-01-01"), vec![p("a1", "x", 0), p("a2", "y", 1)]);
        c.insert(day("2001-01-01"), vec![p("a1", "x", 0)]);
        let r = records(&c, Some(day("2002-01-01")));
        assert_eq!(r[0].valid_to, Some(day("2002-01-01")));
        assert_eq!(r[1].valid_to, Some(day("2001-01-01")));
    }

    #[test]
    fn words_and_articles() {
        let w = word_changes(
            "el sufragio será personal, igualitario, secreto y voluntario.",
            "el sufragio será personal, igualitario y secreto. El sufragio será obligatorio.",
        );
        assert!(w
            .iter()
            .any(|c| c.op == "deleted" && c.text.contains("voluntario")));
        assert!(w
            .iter()
            .any(|c| c.op == "inserted" && c.text.contains("obligatorio")));
        assert!(provision_matches("Artículo 19, N° 4", "19"));
        assert!(provision_matches("Artículo 15", "15"));
        assert!(!provision_matches("Artículo 150", "15"));
        assert!(provision_matches("Artículo 19, N° 4", "artículo 19, n° 4"));
        assert_eq!(provision_id("n/art-15@2023-01-04"), "n/art-15");
        assert_eq!(provision_id("urn:lex@x"), "urn:lex@x");
    }
}

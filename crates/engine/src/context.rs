//! How a passage's stored vector is made, in one place ([`stored_vectors`], used by ingest
//! and evaluation alike): the passage's own embedding of [`dense_text`] (where it sits, then
//! the start of its text), mixed with the mean embedding of the provision it belongs to.
//!
//! A dispositivo ("Art. 5º, inciso X") or an article means more with its surroundings: an
//! inciso is read under its article's caput, an article under its norm's subject. Embedding
//! each passage alone loses that, and a question about the subject of a law finds its
//! passages only one by one. Adding a share of the mean vector of the passage's parent
//! (the article of a LexML dispositivo, else the norm) to every passage vector lifts the
//! passages of a provision that matches as a whole. On the development sets (stored vector
//! = normalised `passage + 0.3 × parent mean`) hybrid nDCG@10 with feedback on is 0.738 /
//! 0.727 on lgpd-pt / bcn-es, against 0.716 / 0.714 with the passages' own vectors
//! (docs/evaluation.md).

use std::collections::HashMap;

use cabildo_core::Passage;

/// Share of the parent's mean vector added to a passage's own (best of 0.2–0.7 on the
/// development sets).
pub const CONTEXT_WEIGHT: f32 = 0.3;

/// How the vectors stored by `model` are made, as the registry records it: a file whose
/// vectors were made another way (another model, or before context mixing) is re-embedded.
pub fn vector_recipe(model: &str) -> String {
    format!("{model}+context{CONTEXT_WEIGHT}")
}

/// The provision whose passages share a context with `p`: for a LexML-style anchor that
/// names a part of an article (`art5_cpt_inc1`, `anexo1!art1_par2`), the article it starts
/// with (`art5`, `anexo1!art1`); for any other passage (BCN's numeric parts, articles of
/// plain-text sources, no anchor) the whole norm.
pub fn context_key(p: &Passage) -> String {
    let article = p.anchor.as_deref().and_then(|anchor| {
        let head = anchor.split('_').next().unwrap_or(anchor);
        // The last `!`-separated step of the head is the provision itself (`art5`, `cap2`).
        let step = head.rsplit('!').next().unwrap_or(head);
        let lexml = step
            .find(|c: char| c.is_ascii_digit())
            .is_some_and(|i| i > 0 && step[..i].chars().all(|c| c.is_ascii_lowercase()));
        lexml.then_some(head)
    });
    match article {
        Some(head) => format!("{}!{head}", p.norm_id),
        None => p.norm_id.clone(),
    }
}

/// The vectors stored for `passages`: `embed` turns their [`dense_text`]s into their own
/// embeddings (batched, cached, with progress: the caller's business; it may return fewer,
/// for the first passages only), and each is mixed with its context. Pass all of a norm's
/// passages together: contexts are formed among `passages`.
pub(crate) fn stored_vectors<E>(
    passages: &[&Passage],
    embed: impl FnOnce(&[String]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Vec<f32>>, E> {
    let texts: Vec<String> = passages.iter().map(|p| dense_text(p)).collect();
    let own = embed(&texts)?;
    let embedded = own.len().min(passages.len());
    Ok(with_context(&passages[..embedded], own))
}

/// Longest text a passage's vector is computed from, in chars (~250 tokens): the heading and
/// the start of the article carry its topic, and embedding cost grows with length (a 2-core
/// machine embeds ~1,500 tokens/s). The whole text stays searchable lexically.
pub(crate) const DENSE_MAX_CHARS: usize = 1_000;

/// What a passage's vector is computed from: where it sits (norm, title, chapter, article),
/// then its text, cut at [`DENSE_MAX_CHARS`].
pub(crate) fn dense_text(p: &Passage) -> String {
    let heading = if p.breadcrumb.is_empty() {
        p.norm_title.clone()
    } else {
        p.breadcrumb.join(" › ")
    };
    let heading = if !p.label.is_empty() && !heading.contains(&p.label) {
        format!("{heading} › {}", p.label)
    } else {
        heading
    };
    let text = format!("{heading}\n{}", p.text);
    match text.char_indices().nth(DENSE_MAX_CHARS) {
        Some((cut, _)) => text[..cut].to_string(),
        None => text,
    }
}

/// Mixes each of `vectors` (the passages' own, unit length, in the order of `passages`)
/// with the mean vector of its [`context_key`] group among `passages`, and scales the result
/// back to unit length. Groups are formed within `passages` only: pass all of a norm's
/// passages together.
fn with_context(passages: &[&Passage], vectors: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    let Some(dim) = vectors.first().map(Vec::len) else {
        return vectors;
    };
    let keys: Vec<String> = passages.iter().map(|p| context_key(p)).collect();
    let mut sums: HashMap<&str, Vec<f32>> = HashMap::new();
    for (key, v) in keys.iter().zip(&vectors) {
        let sum = sums.entry(key).or_insert_with(|| vec![0.0; dim]);
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x;
        }
    }
    for sum in sums.values_mut() {
        normalise(sum);
    }
    keys.iter()
        .zip(vectors)
        .map(|(key, mut v)| {
            if let Some(mean) = sums.get(key.as_str()) {
                for (x, m) in v.iter_mut().zip(mean) {
                    *x += CONTEXT_WEIGHT * m;
                }
            }
            normalise(&mut v);
            v
        })
        .collect()
}

/// Scales `v` to unit length (left as is when it is all zeros).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passage(norm: &str, anchor: Option<&str>) -> Passage {
        let id = format!("{norm}/{}", anchor.unwrap_or("x"));
        Passage {
            anchor: anchor.map(str::to_string),
            ..cabildo_core::fixtures::passage(&id, norm, "")
        }
    }

    #[test]
    fn dispositivos_share_their_article_and_other_passages_their_norm() {
        let key = |norm, anchor| context_key(&passage(norm, anchor));
        assert_eq!(key("lgpd", Some("art5_cpt_inc1")), "lgpd!art5");
        assert_eq!(key("lgpd", Some("art5")), "lgpd!art5");
        assert_eq!(key("lgpd", Some("art55-1_par2")), "lgpd!art55-1");
        assert_eq!(key("res", Some("anexo1!art1_par1u")), "res!anexo1!art1");
        assert_eq!(key("res", Some("anexo1!cap2_sec4")), "res!anexo1!cap2");
        // BCN's idParte is a number: an article of a Chilean norm takes the norm's context.
        assert_eq!(key("1984", Some("8516371")), "1984");
        assert_eq!(key("1984", None), "1984");
    }

    #[test]
    fn a_passage_moves_towards_its_group_and_stays_unit_length() {
        let ps = [
            passage("a", Some("art1_cpt")),
            passage("a", Some("art1_par1")),
            passage("b", None),
        ];
        let refs: Vec<&Passage> = ps.iter().collect();
        let vectors = vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0],
        ];
        let mixed = with_context(&refs, vectors);
        for v in &mixed {
            let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        // The caput gains a component along its paragraph, and vice versa.
        assert!(mixed[0][1] > 0.1 && mixed[0][0] > mixed[0][1]);
        assert!(mixed[1][0] > 0.1 && mixed[1][1] > mixed[1][0]);
        // A passage alone in its group keeps its direction.
        assert_eq!(mixed[2], vec![0.0, 0.0, 1.0]);
    }

    #[test]
    fn dense_text_leads_with_the_heading_and_is_capped() {
        let p = Passage {
            norm_title: "Constitución".into(),
            breadcrumb: vec!["Constitución".into(), "Capítulo II".into()],
            label: "Artículo 13".into(),
            kind: cabildo_core::NormKind::Constitucion,
            ..cabildo_core::fixtures::passage("p", "n", &"x".repeat(5_000))
        };
        let t = dense_text(&p);
        assert!(t.starts_with("Constitución › Capítulo II › Artículo 13\nxx"));
        assert_eq!(t.chars().count(), DENSE_MAX_CHARS);
    }
}

//! The behaviour both backends must share, run against each.

use cabildo_core::{AccessLevel, Filters, Jurisdiction, NormKind, Passage};
use cabildo_vectors::{SearchOptions, VectorStore};
use chrono::NaiveDate;

pub const DIM: usize = 8;

pub fn passage(id: &str, norm: &str) -> Passage {
    cabildo_core::fixtures::passage(id, norm, &format!("text of {id}"))
}

/// A unit vector pointing mostly along axis `i`.
pub fn unit(i: usize, tilt: f32) -> Vec<f32> {
    let mut v = [tilt; DIM];
    v[i % DIM] = 1.0;
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

async fn ids(store: &dyn VectorStore, q: &[f32], f: &Filters, k: usize) -> Vec<String> {
    let mut ids: Vec<String> = store
        .search(q, f, k, SearchOptions::default())
        .await
        .expect("search")
        .into_iter()
        .map(|h| h.passage_id)
        .collect();
    ids.sort();
    ids
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

/// Access levels, tenants, jurisdictions and kinds are applied inside the query.
pub async fn filters_never_leak(store: &dyn VectorStore) {
    let mut public = passage("public", "n1");
    public.tenant = Some("agency-a".into());
    let mut internal_a = passage("internal-a", "n2");
    internal_a.access = AccessLevel::Internal;
    internal_a.tenant = Some("agency-a".into());
    let mut internal_b = passage("internal-b", "n3");
    internal_b.access = AccessLevel::Internal;
    internal_b.tenant = Some("agency-b".into());
    let mut internal_unowned = passage("internal-unowned", "n4");
    internal_unowned.access = AccessLevel::Internal;
    let mut restricted_a = passage("restricted-a", "n5");
    restricted_a.access = AccessLevel::Restricted;
    restricted_a.tenant = Some("agency-a".into());
    let mut peru = passage("peru-decreto", "n6");
    peru.jurisdiction = Jurisdiction::country("PE");
    peru.kind = NormKind::Decreto;
    let all = [
        &public,
        &internal_a,
        &internal_b,
        &internal_unowned,
        &restricted_a,
        &peru,
    ];
    // The restricted passages sit right on the query; the public one is far from it, so a
    // post-filtered top-1 would come back empty.
    let query = unit(0, 0.0);
    let vectors: Vec<Vec<f32>> = all
        .iter()
        .map(|p| {
            if p.access == AccessLevel::Public {
                unit(5, 0.05)
            } else {
                unit(0, 0.01)
            }
        })
        .collect();
    store.upsert(&all, &vectors).await.expect("upsert");

    let anonymous = Filters::default();
    assert_eq!(
        ids(store, &query, &anonymous, 10).await,
        ["peru-decreto", "public"]
    );
    assert_eq!(ids(store, &query, &anonymous, 1).await.len(), 1);

    let agency_a = Filters {
        tenant: Some("agency-a".into()),
        max_access: AccessLevel::Internal,
        ..Filters::default()
    };
    assert_eq!(
        ids(store, &query, &agency_a, 10).await,
        ["internal-a", "internal-unowned", "peru-decreto", "public"]
    );
    let cleared_a = Filters {
        max_access: AccessLevel::Restricted,
        ..agency_a.clone()
    };
    assert!(ids(store, &query, &cleared_a, 10)
        .await
        .contains(&"restricted-a".to_string()));
    assert!(!ids(store, &query, &cleared_a, 10)
        .await
        .contains(&"internal-b".to_string()));

    let peru_decrees = Filters {
        jurisdictions: vec!["pe".into()],
        kinds: vec![NormKind::Decreto],
        ..Filters::operator()
    };
    assert_eq!(
        ids(store, &query, &peru_decrees, 10).await,
        ["peru-decreto"]
    );
    // A norm left out (as an evaluation asks without the norms that answer), or the only one.
    let without_n6 = Filters {
        excluded_norms: vec!["n6".into()],
        ..Filters::default()
    };
    assert_eq!(ids(store, &query, &without_n6, 10).await, ["public"]);
    let only_n6 = Filters {
        norms: vec!["n6".into()],
        ..Filters::default()
    };
    assert_eq!(ids(store, &query, &only_n6, 10).await, ["peru-decreto"]);
    assert_eq!(store.count().await.expect("count"), all.len());
}

/// "In force on D" returns the version in force then.
pub async fn versions_by_date(store: &dyn VectorStore) {
    let mut old = passage("art-1@2000", "ley-1");
    old.valid_from = Some(date("2000-01-01"));
    old.valid_to = Some(date("2015-06-01"));
    let mut new = passage("art-1@2015", "ley-1");
    new.valid_from = Some(date("2015-06-01"));
    let v = vec![unit(1, 0.1), unit(1, 0.1)];
    store.upsert(&[&old, &new], &v).await.expect("upsert");
    let on = |d: &str| Filters {
        in_force_on: Some(date(d)),
        ..Filters::operator()
    };
    let q = unit(1, 0.1);
    assert_eq!(ids(store, &q, &on("2010-01-01"), 10).await, ["art-1@2000"]);
    assert_eq!(ids(store, &q, &on("2015-06-01"), 10).await, ["art-1@2015"]);
    assert_eq!(ids(store, &q, &on("2026-11-29"), 10).await, ["art-1@2015"]);
    assert!(ids(store, &q, &on("1999-12-31"), 10).await.is_empty());

    // A version put in between closes the old text earlier: only its validity moves.
    store
        .set_validity(
            "art-1@2000",
            Some(date("2000-01-01")),
            Some(date("2012-01-01")),
        )
        .await
        .expect("set validity");
    assert_eq!(ids(store, &q, &on("2010-01-01"), 10).await, ["art-1@2000"]);
    assert!(ids(store, &q, &on("2013-01-01"), 10).await.is_empty());
    store
        .delete_passages(&["art-1@2015".to_string(), "never-there".to_string()])
        .await
        .expect("delete passages");
    assert!(ids(store, &q, &on("2026-11-29"), 10).await.is_empty());
    assert_eq!(store.count_of("ley-1").await.expect("count"), 1);

    store.delete_norm("ley-1").await.expect("delete");
    assert!(ids(store, &q, &Filters::operator(), 10).await.is_empty());
}

/// A search returns each hit's stored vector when asked (pseudo-relevance feedback reads
/// them), and none otherwise.
pub async fn hits_carry_their_vectors_when_asked(store: &dyn VectorStore) {
    let ps = [passage("a", "n"), passage("b", "n")];
    let vs = vec![unit(2, 0.1), unit(3, 0.1)];
    store.upsert(&[&ps[0], &ps[1]], &vs).await.expect("upsert");
    let with = SearchOptions {
        with_vectors: true,
        ..SearchOptions::default()
    };
    let hits = store
        .search(&unit(2, 0.1), &Filters::operator(), 2, with)
        .await
        .expect("search");
    assert_eq!(hits.len(), 2);
    for hit in &hits {
        let stored = if hit.passage_id == "a" {
            &vs[0]
        } else {
            &vs[1]
        };
        let got = hit.vector.as_ref().expect("a vector was asked for");
        let cosine: f32 = got.iter().zip(stored).map(|(x, y)| x * y).sum();
        assert!(cosine > 0.9999, "{}: {cosine}", hit.passage_id);
    }
    let hits = store
        .search(
            &unit(2, 0.1),
            &Filters::operator(),
            2,
            SearchOptions::default(),
        )
        .await
        .expect("search");
    assert!(hits.iter().all(|h| h.vector.is_none()));
}

/// A norm's access level and tenant change in place: every one of its vectors follows, the
/// other norms' stay as they were, and nothing is re-embedded (the vectors are unchanged).
pub async fn access_changes_in_place(store: &dyn VectorStore) {
    let a1 = passage("a/1", "a");
    let a2 = passage("a/2", "a");
    let b1 = passage("b/1", "b");
    let vectors = [unit(0, 0.1), unit(1, 0.1), unit(2, 0.1)];
    store
        .upsert(&[&a1, &a2, &b1], &vectors)
        .await
        .expect("upsert");
    let anonymous = Filters::default();
    let query = unit(0, 0.2);
    assert_eq!(
        ids(store, &query, &anonymous, 10).await,
        ["a/1", "a/2", "b/1"]
    );
    assert_eq!(store.count_of("a").await.expect("count"), 2);
    assert_eq!(store.count_of("nothing").await.expect("count"), 0);

    store
        .set_access("a", AccessLevel::Restricted, Some("sii"))
        .await
        .expect("set access");
    assert_eq!(ids(store, &query, &anonymous, 10).await, ["b/1"]);
    let other_agency = Filters {
        tenant: Some("sag".into()),
        max_access: AccessLevel::Restricted,
        ..Filters::default()
    };
    assert_eq!(ids(store, &query, &other_agency, 10).await, ["b/1"]);
    let sii = Filters {
        tenant: Some("sii".into()),
        max_access: AccessLevel::Restricted,
        ..Filters::default()
    };
    let hits = store
        .search(
            &query,
            &sii,
            10,
            SearchOptions {
                with_vectors: true,
                ..SearchOptions::default()
            },
        )
        .await
        .expect("search");
    let a1_hit = hits
        .iter()
        .find(|h| h.passage_id == "a/1")
        .expect("a/1 for its agency");
    let kept = a1_hit.vector.as_ref().expect("vector");
    let close = kept
        .iter()
        .zip(&vectors[0])
        .all(|(x, y)| (x - y).abs() < 1e-5);
    assert!(close, "the vector changed: {kept:?}");
    assert_eq!(hits.len(), 3);

    store
        .set_access("a", AccessLevel::Public, None)
        .await
        .expect("set access back");
    assert_eq!(
        ids(store, &query, &anonymous, 10).await,
        ["a/1", "a/2", "b/1"]
    );
}

//! Answers as delivered and the feedback on them: what the team that reviews answers reads
//! with `cabildo feedback export`. Callers redact before this point.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Registry, Result, StoreError};

/// An answer as delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    /// Its id (`ans_…`, `chatcmpl-…`).
    pub id: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who received it (pseudonym).
    pub principal: String,
    /// The route that answered.
    pub route: String,
    /// The question, personal data redacted.
    pub question: String,
    /// The answer text.
    pub answer: String,
    /// Its citations (JSON array, as the API returned them).
    pub citations: serde_json::Value,
    /// Whether it abstained.
    pub abstained: bool,
    /// Who wrote it.
    pub model: String,
}

/// A rating of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// The answer helped.
    Useful,
    /// It did not.
    NotUseful,
}

impl Rating {
    /// As stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Useful => "useful",
            Rating::NotUseful => "not_useful",
        }
    }

    fn parse(s: &str) -> Result<Rating> {
        match s {
            "useful" => Ok(Rating::Useful),
            "not_useful" => Ok(Rating::NotUseful),
            other => Err(StoreError::Invalid(format!("feedback rating {other:?}"))),
        }
    }
}

/// Feedback on an answer, with the answer.
#[derive(Debug, Clone, Serialize)]
pub struct FeedbackRecord {
    /// The feedback's id.
    pub id: i64,
    /// When it was given (RFC 3339, UTC).
    pub at: String,
    /// The rating.
    pub rating: Rating,
    /// The comment, personal data redacted.
    pub comment: Option<String>,
    /// The answer rated.
    pub answer: AnswerRecord,
}

impl Registry {
    /// Keeps a delivered answer (an id seen twice keeps the first).
    pub async fn put_answer(&self, a: &AnswerRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO answers (id, at, principal, route, question, answer, citations,
                 abstained, model)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&a.id)
        .bind(&a.at)
        .bind(&a.principal)
        .bind(&a.route)
        .bind(&a.question)
        .bind(&a.answer)
        .bind(a.citations.to_string())
        .bind(i64::from(a.abstained))
        .bind(&a.model)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Who received answer `id` (their pseudonym), if it was delivered.
    pub async fn answer_recipient(&self, id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT principal FROM answers WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Stores a rating of answer `answer_id` (replacing an earlier one); returns its id.
    pub async fn put_feedback(
        &self,
        answer_id: &str,
        at: &str,
        rating: Rating,
        comment: Option<&str>,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "INSERT INTO feedback (answer_id, at, rating, comment) VALUES ($1, $2, $3, $4)
             ON CONFLICT (answer_id) DO UPDATE SET at = excluded.at, rating = excluded.rating,
                 comment = excluded.comment
             RETURNING id",
        )
        .bind(answer_id)
        .bind(at)
        .bind(rating.as_str())
        .bind(comment)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Feedback given from `from` to `to` (UTC days, both included; `None`: unbounded),
    /// oldest first, each with its answer.
    pub async fn feedback_between(
        &self,
        from: Option<chrono::NaiveDate>,
        to: Option<chrono::NaiveDate>,
    ) -> Result<Vec<FeedbackRecord>> {
        let from = from.map_or_else(String::new, |d| d.format("%Y-%m-%d").to_string());
        let until = to
            .and_then(|d| d.succ_opt())
            .map_or_else(|| "9999".to_string(), |d| d.format("%Y-%m-%d").to_string());
        let rows = sqlx::query(
            "SELECT f.id, f.at, f.rating, f.comment, a.id, a.at, a.principal, a.route,
                    a.question, a.answer, a.citations, a.abstained, a.model
             FROM feedback f JOIN answers a ON a.id = f.answer_id
             WHERE f.at >= $1 AND f.at < $2 ORDER BY f.at, f.id",
        )
        .bind(from)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let citations: String = r.get(10);
                Ok(FeedbackRecord {
                    id: r.get(0),
                    at: r.get(1),
                    rating: Rating::parse(r.get::<&str, _>(2))?,
                    comment: r.get(3),
                    answer: AnswerRecord {
                        id: r.get(4),
                        at: r.get(5),
                        principal: r.get(6),
                        route: r.get(7),
                        question: r.get(8),
                        answer: r.get(9),
                        citations: serde_json::from_str(&citations).map_err(|e| {
                            StoreError::Invalid(format!("answer citations {citations:?}: {e}"))
                        })?,
                        abstained: r.get::<i64, _>(11) != 0,
                        model: r.get(12),
                    },
                })
            })
            .collect()
    }
}

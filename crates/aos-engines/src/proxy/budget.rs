//! Budgets: reserve a request's worst-case cost before it goes upstream, settle the real
//! cost after.
//!
//! A reservation is one conditional UPDATE per limited counter (`spent + reserved + cost
//! <= limit`) inside the caller's write transaction, so concurrent requests cannot
//! together pass a limit: each sees the others' reservations. The settlement (real cost
//! in, reservation out) goes through the background writer; until it lands the
//! reservation keeps counting, which errs on the side of the limit.

use aos_drivers::{Conn, proxy as db};
use aos_models::DbTime;
use aos_models::proxy::{ProxySpendRow, SCOPE_TENANT, agent_scope, key_scope};
use aos_types::TenantId;
use time::OffsetDateTime;
use uuid::Uuid;

use super::settings::TenantSettings;
use crate::error::EngineResult;

/// `day:YYYY-MM-DD` and `month:YYYY-MM` of `now` (UTC).
pub fn periods(now: OffsetDateTime) -> (String, String) {
    let now = now.to_offset(time::UtcOffset::UTC);
    let (y, m, d) = (now.year(), u8::from(now.month()), now.day());
    (format!("day:{y:04}-{m:02}-{d:02}"), format!("month:{y:04}-{m:02}"))
}

/// One counter with a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub scope: String,
    pub period: String,
    pub limit_micros: i64,
}

impl Limit {
    /// Seconds from `now` until this limit's period ends and its counter starts again
    /// (UTC midnight, or the first of next month): what a refused client is told to wait.
    pub fn resets_in(&self, now: OffsetDateTime) -> u64 {
        let now = now.to_offset(time::UtcOffset::UTC);
        let tomorrow = now.date().next_day().unwrap_or(now.date());
        let end = if self.period.starts_with("month:") {
            let (year, month) = match now.month() {
                time::Month::December => (now.year() + 1, time::Month::January),
                m => (now.year(), m.next()),
            };
            time::Date::from_calendar_date(year, month, 1).unwrap_or(tomorrow)
        } else {
            tomorrow
        };
        let end = end.midnight().assume_utc();
        u64::try_from((end - now).whole_seconds()).unwrap_or(0).max(1)
    }

    /// `the tenant's daily budget`, `this key's monthly budget`.
    pub fn describe(&self) -> String {
        let who = if self.scope == SCOPE_TENANT {
            "the tenant's"
        } else if self.scope.starts_with("agent:") {
            "this agent's"
        } else {
            "this API key's"
        };
        let when = if self.period.starts_with("day:") {
            "daily"
        } else {
            "monthly"
        };
        format!("{who} {when} budget")
    }
}

/// The limited counters a request of `key` (of `agent`) must reserve against.
pub fn limits(settings: &TenantSettings, key: Option<Uuid>, agent: Option<Uuid>, now: OffsetDateTime) -> Vec<Limit> {
    let (day, month) = periods(now);
    let mut out = Vec::new();
    let mut push = |scope: String, budget: &super::settings::Budget| {
        if let Some(limit) = budget.daily_limit_micros {
            out.push(Limit {
                scope: scope.clone(),
                period: day.clone(),
                limit_micros: limit,
            });
        }
        if let Some(limit) = budget.monthly_limit_micros {
            out.push(Limit {
                scope,
                period: month.clone(),
                limit_micros: limit,
            });
        }
    };
    push(SCOPE_TENANT.to_owned(), &settings.budget);
    if let Some(key) = key
        && let Some(budget) = settings.key_budgets.get(&key)
    {
        push(key_scope(key), budget);
    }
    if let Some(agent) = agent
        && let Some(budget) = settings.agent_budgets.get(&agent)
    {
        push(agent_scope(agent), budget);
    }
    // The writer applies settlements in this same order: no lock-order deadlocks.
    out.sort_by(|a, b| (&a.scope, &a.period).cmp(&(&b.scope, &b.period)));
    out
}

/// What a request holds against its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub amount_micros: i64,
    pub counters: Vec<(String, String)>,
}

/// Reserves `amount` on every limit. `Ok(Err(limit))` names the first limit it would
/// pass; the caller must then roll its transaction back (earlier counters of this call
/// were already raised).
pub async fn reserve(
    conn: &mut Conn,
    tenant: Uuid,
    limits: &[Limit],
    amount: i64,
) -> EngineResult<Result<Reservation, Limit>> {
    let now = DbTime::now();
    let tenant_id = TenantId::from(tenant);
    for limit in limits {
        // More than the whole limit can never fit (and is not worth a query).
        if amount > limit.limit_micros {
            return Ok(Err(limit.clone()));
        }
        db::ensure_counter(conn, tenant_id, &limit.scope, &limit.period, now).await?;
        if !db::reserve(
            conn,
            tenant_id,
            &limit.scope,
            &limit.period,
            amount,
            limit.limit_micros,
            now,
        )
        .await?
        {
            return Ok(Err(limit.clone()));
        }
    }
    Ok(Ok(Reservation {
        amount_micros: amount,
        counters: limits.iter().map(|l| (l.scope.clone(), l.period.clone())).collect(),
    }))
}

/// The counter deltas of a finished call: its real cost into the tenant's and the key's
/// daily and monthly spend (in the reservation's periods when there was one), and the
/// reservation released.
pub fn settlement(
    tenant: Uuid,
    key: Option<Uuid>,
    agent: Option<Uuid>,
    reservation: Option<&Reservation>,
    cost_micros: i64,
    now: OffsetDateTime,
) -> Vec<ProxySpendRow> {
    let (day, month) = periods(now);
    let updated_at = DbTime::from(now);
    let mut scopes = vec![SCOPE_TENANT.to_owned()];
    scopes.extend(key.map(key_scope));
    scopes.extend(agent.map(agent_scope));
    // The writer applies rows in sorted order, as reservations are taken: no lock-order
    // deadlocks.
    scopes.sort();
    let mut rows: Vec<ProxySpendRow> = Vec::new();
    let mut periods_of = vec![day, month];
    if let Some(r) = reservation {
        // Charge the periods the reservation was made in (a call can cross midnight).
        for (_, period) in &r.counters {
            let kind = period.split(':').next().unwrap_or_default();
            if let Some(slot) = periods_of.iter_mut().find(|p| p.starts_with(kind)) {
                slot.clone_from(period);
            }
        }
    }
    for scope in &scopes {
        for period in &periods_of {
            let reserved = reservation
                .filter(|r| r.counters.iter().any(|(s, p)| s == scope && p == period))
                .map_or(0, |r| -r.amount_micros);
            if cost_micros == 0 && reserved == 0 {
                continue;
            }
            rows.push(ProxySpendRow {
                tenant_id: tenant.into(),
                scope: scope.clone(),
                period: period.clone(),
                spent_micros: cost_micros,
                reserved_micros: reserved,
                updated_at,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::settings::Budget;
    use time::macros::datetime;

    #[test]
    fn a_limit_resets_at_the_end_of_its_utc_period() {
        let now = datetime!(2026-12-31 23:00 UTC);
        let (day, month) = periods(now);
        let limit = |period: String| Limit {
            scope: SCOPE_TENANT.to_owned(),
            period,
            limit_micros: 1,
        };
        assert_eq!(limit(day).resets_in(now), 3600);
        assert_eq!(limit(month).resets_in(now), 3600);
        let now = datetime!(2026-11-30 12:00 UTC);
        assert_eq!(limit(periods(now).1).resets_in(now), 12 * 3600);
        assert_eq!(limit(periods(now).0).resets_in(now), 12 * 3600);
    }

    #[test]
    fn periods_are_utc() {
        let (day, month) = periods(datetime!(2026-11-21 23:30 -02:00));
        assert_eq!(day, "day:2026-11-22");
        assert_eq!(month, "month:2026-11");
    }

    #[test]
    fn only_limited_counters_are_reserved_and_settlement_releases_them() {
        let key = Uuid::new_v4();
        let mut settings = TenantSettings {
            budget: Budget {
                daily_limit_micros: Some(100),
                monthly_limit_micros: None,
            },
            ..TenantSettings::default()
        };
        settings.key_budgets.insert(
            key,
            Budget {
                daily_limit_micros: None,
                monthly_limit_micros: Some(50),
            },
        );
        let now = datetime!(2026-11-21 12:00 UTC);
        let limits = limits(&settings, Some(key), None, now);
        assert_eq!(limits.len(), 2);
        // Sorted as the writer sorts: `key:...` before `tenant`.
        assert_eq!(limits[0].describe(), "this API key's monthly budget");
        assert_eq!(limits[1].describe(), "the tenant's daily budget");
        let reservation = Reservation {
            amount_micros: 40,
            counters: limits.iter().map(|l| (l.scope.clone(), l.period.clone())).collect(),
        };
        let rows = settlement(Uuid::new_v4(), Some(key), None, Some(&reservation), 7, now);
        // tenant day/month, key day/month: all get the spend; two release the reservation.
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|r| r.spent_micros == 7));
        assert_eq!(rows.iter().filter(|r| r.reserved_micros == -40).count(), 2);
        assert!(settlement(Uuid::new_v4(), None, None, None, 0, now).is_empty());

        // An agent's budget is one more counter, reserved and charged with the others.
        let agent = Uuid::new_v4();
        settings.agent_budgets.insert(
            agent,
            Budget {
                daily_limit_micros: Some(30),
                monthly_limit_micros: None,
            },
        );
        let limits = super::limits(&settings, Some(key), Some(agent), now);
        assert_eq!(limits.len(), 3);
        assert_eq!(limits[0].describe(), "this agent's daily budget");
        let rows = settlement(Uuid::new_v4(), Some(key), Some(agent), None, 7, now);
        assert_eq!(rows.len(), 6);
        assert!(rows.iter().any(|r| r.scope == agent_scope(agent)));
    }
}

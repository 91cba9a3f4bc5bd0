//! The SQL of representative searches, as text and bound values, in every dialect.

use super::*;
use crate::{fhir::ResourceType, sql::statements};

const Y2025: i64 = 1_735_689_600_000;
const Y2026: i64 = 1_767_225_600_000;

fn query(params: &[(&str, &str)]) -> SearchQuery {
    SearchQuery::parse(ResourceType::Observation, params.iter().copied()).unwrap()
}

fn text(s: &str) -> Arg<'_> {
    Arg::Text(s)
}

/// A search using every parameter.
fn everything() -> SearchQuery {
    query(&[
        ("_id", "a,b"),
        ("patient", "Patient/p1"),
        ("category", "laboratory"),
        ("code", "http://loinc.org|2498-4,|x,http://loinc.org|"),
        ("date", "ge2025"),
        ("_lastUpdated", "lt2026"),
        ("_sort", "-date,_lastUpdated"),
        ("_count", "10"),
        ("_offset", "20"),
    ])
}

#[test]
fn sqlite_native_search() {
    let q = everything();
    let target = crate::sqlite::target();
    let count = target.count(Dialect::Sqlite, &q);
    let filter = "FROM resources r WHERE r.type = ? AND r.id IN (?, ?) AND r.patient = ? \
        AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.type = r.type AND t.id = r.id \
        AND t.param = ? AND ((t.code = ?))) \
        AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.type = r.type AND t.id = r.id \
        AND t.param = ? AND ((t.system = ? AND t.code = ?) OR (t.system = ? AND t.code = ?) \
        OR t.system = ?)) \
        AND r.date_start IS NOT NULL AND r.date_start >= ? AND r.last_updated < ?";
    assert_eq!(count.sql(), format!("SELECT COUNT(*) {filter}"));
    let args = vec![
        text("Observation"),
        text("a"),
        text("b"),
        text("p1"),
        text("category"),
        text("laboratory"),
        text("code"),
        text("http://loinc.org"),
        text("2498-4"),
        text(""),
        text("x"),
        text("http://loinc.org"),
        Arg::Int(Y2025),
        Arg::Int(Y2026),
    ];
    assert_eq!(count.args(), args);
    let page = target.page(Dialect::Sqlite, &q, "r.id");
    assert_eq!(
        page.sql(),
        format!(
            "SELECT r.id {filter} ORDER BY r.date_start IS NULL, r.date_start DESC, \
             r.last_updated ASC, r.id ASC LIMIT ? OFFSET ?"
        )
    );
    let mut paged = args;
    paged.extend([Arg::Int(10), Arg::Int(20)]);
    assert_eq!(page.args(), paged);
}

#[test]
fn postgres_native_search_numbers_its_placeholders_and_uses_the_code_index() {
    let q = query(&[("code", "http://loinc.org|2498-4"), ("patient", "p1"), ("_count", "5")]);
    let target = (statements::POSTGRES.target)();
    let filter = "FROM resources r WHERE r.resource_type = $1 AND r.patient = $2 \
        AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.resource_type = r.resource_type \
        AND t.id = r.id AND t.param = $3 \
        AND ((t.code_system = $4 AND t.code = $5 AND left(t.code, 256) = left($6, 256))))";
    let count = target.count(Dialect::Postgres, &q);
    assert_eq!(count.sql(), format!("SELECT COUNT(*) {filter}"));
    let args = vec![text("Observation"), text("p1"), text("code"), text("http://loinc.org")];
    let mut args = args;
    args.extend([text("2498-4"), text("2498-4")]);
    assert_eq!(count.args(), args);
    let page = target.page(Dialect::Postgres, &q, "r.id, r.json");
    assert_eq!(
        page.sql(),
        format!("SELECT r.id, r.json {filter} ORDER BY r.id ASC LIMIT $7 OFFSET $8")
    );
    assert_eq!(page.args()[6..], [Arg::Int(5), Arg::Int(0)]);
}

#[test]
fn mysql_native_search() {
    let q = query(&[("_id", "a"), ("code", "2498-4"), ("date", "lt2025"), ("_sort", "_id")]);
    let target = (statements::MYSQL.target)();
    let page = target.page(Dialect::Mysql, &q, "r.id");
    assert_eq!(
        page.sql(),
        "SELECT r.id FROM resources r WHERE r.resource_type = ? AND r.id IN (?) \
         AND EXISTS (SELECT 1 FROM resource_tokens t WHERE t.resource_type = r.resource_type \
         AND t.id = r.id AND t.param = ? AND ((t.code = ?))) \
         AND r.date_start IS NOT NULL AND r.date_start < ? \
         ORDER BY r.id ASC, r.id ASC LIMIT ? OFFSET ?"
    );
    assert_eq!(
        page.args(),
        [
            text("Observation"),
            text("a"),
            text("code"),
            text("2498-4"),
            Arg::Int(Y2025),
            Arg::Int(50),
            Arg::Int(0)
        ]
    );
}

/// A legacy mapping's target: one table, fixed category, code from a column, no last
/// update column.
fn legacy(d: Dialect) -> Target {
    let col = |c: &str| format!("{}.{}", d.quote("results"), d.quote(c));
    Target {
        from: d.quote("results"),
        type_column: None,
        id: d.as_bytes(&col("ResultID")),
        patient: Some(d.as_bytes(&col("PatientID"))),
        date: Some(d.epoch_ms(&col("Taken"), false)),
        last_updated: None,
        tokens: Tokens::Mapped {
            category: Some(MappedCoding {
                system: "http://cat".into(),
                code: MappedCode::Fixed("laboratory".into()),
            }),
            code: Some(MappedCoding {
                system: "http://loinc.org".into(),
                code: MappedCode::Column(d.as_bytes_or_null(&col("LOINC"))),
            }),
        },
    }
}

#[test]
fn mysql_legacy_search_quotes_names_and_matches_mapped_codings() {
    let q = query(&[
        ("patient", "p1"),
        ("category", "laboratory"),
        ("code", "http://loinc.org|2498-4,http://other|1,http://loinc.org|"),
        ("date", "ge2025"),
        ("_lastUpdated", "lt2025"),
    ]);
    let count = legacy(Dialect::Mysql).count(Dialect::Mysql, &q);
    let code = "NULLIF(CAST(`results`.`LOINC` AS BINARY), '')";
    let date = "(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', `results`.`Taken`) * 1000)";
    assert_eq!(
        count.sql(),
        format!(
            "SELECT COUNT(*) FROM `results` WHERE 1 = 1 \
             AND CAST(`results`.`PatientID` AS BINARY) = ? AND (1 = 1) \
             AND ({code} = ? OR {code} IS NOT NULL) \
             AND {date} IS NOT NULL AND {date} >= ?"
        )
    );
    assert_eq!(count.args(), [text("p1"), text("2498-4"), Arg::Int(Y2025)]);
}

#[test]
fn legacy_conditions_that_can_never_hold_match_nothing() {
    let mut target = legacy(Dialect::Sqlite);
    let q = query(&[
        ("category", "vital-signs"),
        ("code", "http://other|1"),
        ("_lastUpdated", "gt2025"),
    ]);
    assert_eq!(
        target.count(Dialect::Sqlite, &q).sql(),
        "SELECT COUNT(*) FROM \"results\" WHERE 1 = 1 AND 1 = 0 AND 1 = 0 AND 1 = 0"
    );
    // Every row was last updated at the epoch: a bound that holds there adds nothing.
    let q = query(&[("_lastUpdated", "lt2025"), ("_lastUpdated", "ge1970")]);
    assert_eq!(
        target.count(Dialect::Sqlite, &q).sql(),
        "SELECT COUNT(*) FROM \"results\" WHERE 1 = 1"
    );
    target.date = None;
    target.patient = None;
    let q = query(&[("date", "2025"), ("patient", "p1")]);
    let count = target.count(Dialect::Sqlite, &q);
    assert_eq!(count.sql(), "SELECT COUNT(*) FROM \"results\" WHERE 1 = 1 AND 1 = 0 AND 1 = 0");
    assert!(count.args().is_empty());
}

#[test]
fn sqlite_legacy_sorts_undated_rows_last_and_skips_keys_it_lacks() {
    let q = query(&[("_sort", "date,-_lastUpdated,-_id"), ("_count", "3")]);
    let page = legacy(Dialect::Sqlite).page(Dialect::Sqlite, &q, "1");
    let id = "CAST(\"results\".\"ResultID\" AS TEXT) COLLATE BINARY";
    let date = "(unixepoch(\"results\".\"Taken\") * 1000)";
    assert_eq!(
        page.sql(),
        format!(
            "SELECT 1 FROM \"results\" WHERE 1 = 1 ORDER BY {date} IS NULL, {date} ASC, \
             {id} DESC, {id} ASC LIMIT ? OFFSET ?"
        )
    );
    assert_eq!(page.args(), [Arg::Int(3), Arg::Int(0)]);
}

#[test]
fn values_never_become_sql_text_in_any_dialect() {
    let evil = "x' OR 1=1 --";
    let q = query(&[
        ("_id", "a.b"),
        ("patient", "p-1"),
        ("category", evil),
        ("code", &format!("{evil}|{evil},|{evil}")),
    ]);
    let targets = [
        (Dialect::Sqlite, crate::sqlite::target().clone()),
        (Dialect::Postgres, (statements::POSTGRES.target)().clone()),
        (Dialect::Mysql, (statements::MYSQL.target)().clone()),
        (Dialect::Sqlite, legacy(Dialect::Sqlite)),
        (Dialect::Mysql, legacy(Dialect::Mysql)),
    ];
    for (dialect, target) in targets {
        for statement in [target.count(dialect, &q), target.page(dialect, &q, "1")] {
            let sql = statement.sql();
            assert!(
                !sql.contains("OR 1=1") && !sql.contains("a.b") && !sql.contains("p-1"),
                "{sql}"
            );
            let placeholders = match dialect {
                Dialect::Postgres => sql.matches('$').count(),
                Dialect::Sqlite | Dialect::Mysql => sql.matches('?').count(),
            };
            assert_eq!(placeholders, statement.args().len(), "{sql}");
        }
    }
}

#[test]
fn dialects_spell_names_casts_and_dates() {
    assert_eq!(Dialect::Sqlite.quote("order"), "\"order\"");
    assert_eq!(Dialect::Postgres.quote("order"), "\"order\"");
    assert_eq!(Dialect::Mysql.quote("order"), "`order`");
    assert_eq!(Dialect::Sqlite.as_text("c"), "CAST(c AS TEXT)");
    assert_eq!(Dialect::Mysql.as_text("c"), "CAST(c AS CHAR)");
    assert_eq!(Dialect::Postgres.as_bytes("c"), "CAST(c AS TEXT) COLLATE \"C\"");
    assert_eq!(Dialect::Sqlite.epoch_ms("c", true), "(unixepoch(date(c)) * 1000)");
    assert_eq!(
        Dialect::Mysql.epoch_ms("c", true),
        "(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', DATE(c)) * 1000)"
    );
    let mut s = Sql::new(Dialect::Postgres, "SELECT ");
    s.int(1).push(", ").text("a");
    assert_eq!((s.sql(), s.args()), ("SELECT $1, $2", &[Arg::Int(1), text("a")][..]));
}

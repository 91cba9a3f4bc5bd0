//! Searches of a mapped schema: a mapping as a [`Target`] of the SQL builder the
//! native backends share, so that every search condition, the paging and the order run
//! in SQL with bound parameters.

use super::mapping::{Coding, Col, Mapping, Source, shape};
use crate::{
    fhir::ResourceType,
    sql::builder::{Dialect, MappedCode, MappedCoding, Target, Tokens},
};

impl Mapping {
    /// `table.column`, quoted.
    fn column(d: Dialect, col: &Col) -> String {
        format!("{}.{}", d.quote(&col.table), d.quote(&col.column))
    }

    /// The mapped tables and joins, after `FROM`.
    fn tables_sql(&self, d: Dialect) -> String {
        let mut sql = d.quote(&self.table);
        for join in &self.joins {
            sql.push_str(&format!(" JOIN {} ON ", d.quote(&join.table)));
            let on: Vec<String> = join
                .on
                .iter()
                .map(|(a, b)| format!("{} = {}", Self::column(d, a), Self::column(d, b)))
                .collect();
            sql.push_str(&on.join(" AND "));
        }
        sql
    }

    /// The date's instant in unix milliseconds, `NULL` when the column is.
    fn date_sql(&self, d: Dialect) -> Option<String> {
        let date_only = shape(self.resource_type).date_only;
        self.date.as_ref().map(|c| d.epoch_ms(&Self::column(d, c), date_only))
    }

    /// The last update in unix milliseconds; the epoch when the column is `NULL` (or
    /// not a date), as the resource then says.
    fn last_updated_sql(&self, d: Dialect) -> Option<String> {
        self.last_updated
            .as_ref()
            .map(|c| format!("COALESCE({}, 0)", d.epoch_ms(&Self::column(d, c), false)))
    }

    fn mapped(&self, d: Dialect, coding: &Coding) -> MappedCoding {
        let code = match &coding.code {
            Source::Fixed(code) => MappedCode::Fixed(code.clone()),
            Source::Column(i) => {
                MappedCode::Column(d.as_bytes_or_null(&Self::column(d, &self.columns[*i])))
            }
        };
        MappedCoding { system: coding.system.clone(), code }
    }

    /// Where a search of this type looks, in `d`.
    pub(super) fn target(&self, d: Dialect) -> Target {
        let id = d.as_bytes(&Self::column(d, &self.id));
        let patient = if self.resource_type == ResourceType::Patient {
            Some(id.clone())
        } else {
            self.patient.as_ref().map(|c| d.as_bytes(&Self::column(d, c)))
        };
        Target {
            from: self.tables_sql(d),
            type_column: None,
            id,
            patient,
            date: self.date_sql(d),
            last_updated: self.last_updated_sql(d),
            tokens: Tokens::Mapped {
                category: self.category.as_ref().map(|c| self.mapped(d, c)),
                code: self.code.as_ref().map(|c| self.mapped(d, c)),
            },
        }
    }

    /// The columns a row is read from (see [`super::row::RawRow`]): id, date and last
    /// update as SQL sees them, then every column the mapping reads, as text.
    pub(super) fn select_sql(&self, d: Dialect) -> String {
        let mut cols = vec![
            d.as_text(&Self::column(d, &self.id)),
            self.date_sql(d).unwrap_or_else(|| "NULL".into()),
            self.last_updated_sql(d).unwrap_or_else(|| "NULL".into()),
        ];
        cols.extend(self.columns.iter().map(|c| d.as_text(&Self::column(d, c))));
        cols.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::LegacyConfig;
    use crate::{fhir::ResourceType, search::SearchQuery, sql::builder::Dialect};

    #[test]
    fn search_sql_binds_every_value() {
        let config = LegacyConfig::from_json(
            r#"{"resources": {"Observation": {"table": "t", "id": "id", "patient": "pid",
                "date": "d", "code": {"system": "http://loinc.org", "column": "c"}}}}"#,
        )
        .unwrap();
        let mapping = &config.mappings[&ResourceType::Observation];
        let query = SearchQuery::parse(
            ResourceType::Observation,
            [
                ("_id", "a,b"),
                ("patient", "p1"),
                ("code", "x' OR 1=1 --,http://loinc.org|"),
                ("date", "ge2025"),
            ],
        )
        .unwrap();
        for d in [Dialect::Sqlite, Dialect::Mysql] {
            let count = mapping.target(d).count(d, &query);
            let sql = count.sql();
            assert!(
                !sql.contains("OR 1=1") && !sql.contains("loinc") && !sql.contains("p1"),
                "{sql}"
            );
            assert_eq!(sql.matches('?').count(), count.args().len());
            assert_eq!(count.args().len(), 2 + 1 + 1 + 1);
        }
    }

    #[test]
    fn joins_and_columns_are_quoted() {
        let config = LegacyConfig::from_json(
            r#"{"resources": {"Observation": {"table": "detail",
                "joins": [{"table": "result", "on": [["rid", "result.rid"]]}],
                "id": "id", "patient": "result.pid", "date": "result.taken"}}}"#,
        )
        .unwrap();
        let mapping = &config.mappings[&ResourceType::Observation];
        let target = mapping.target(Dialect::Mysql);
        assert_eq!(target.from, "`detail` JOIN `result` ON `detail`.`rid` = `result`.`rid`");
        assert_eq!(target.patient.as_deref(), Some("CAST(`result`.`pid` AS BINARY)"));
        assert_eq!(
            mapping.select_sql(Dialect::Sqlite),
            "CAST(\"detail\".\"id\" AS TEXT), (unixepoch(\"result\".\"taken\") * 1000), NULL, \
             CAST(\"result\".\"pid\" AS TEXT), CAST(\"result\".\"taken\" AS TEXT)"
        );
    }
}

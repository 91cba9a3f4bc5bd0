//! The check of a mapping against the database it maps: every table and column it
//! names must exist.

use super::{
    LegacyError,
    mapping::{Col, Mapping},
};
use std::collections::BTreeMap;

impl Mapping {
    /// The tables it reads.
    pub(super) fn tables(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.table).chain(self.joins.iter().map(|j| &j.table))
    }

    /// Checks the mapping against the database's schema: `schema` holds the columns of
    /// each of [`Mapping::tables`] (none when there is no such table).
    pub(super) fn check_schema(
        &self,
        schema: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), LegacyError> {
        let resource = self.resource_type.to_string();
        let columns_of = |table: &str| schema.get(table).filter(|cols| !cols.is_empty());
        if let Some(table) = self.tables().find(|t| columns_of(t).is_none()) {
            return Err(LegacyError::UnknownTable { resource, table: table.clone() });
        }
        let mut used: Vec<&Col> = vec![&self.id];
        used.extend(&self.patient);
        used.extend(&self.date);
        used.extend(&self.last_updated);
        used.extend(&self.columns);
        for join in &self.joins {
            for (a, b) in &join.on {
                used.extend([a, b]);
            }
        }
        for col in used {
            let table = self.tables().find(|t| t.eq_ignore_ascii_case(&col.table));
            let known = table
                .and_then(|t| columns_of(t))
                .is_some_and(|cols| cols.iter().any(|c| c.eq_ignore_ascii_case(&col.column)));
            if !known {
                return Err(LegacyError::UnknownColumn {
                    resource,
                    table: col.table.clone(),
                    column: col.column.clone(),
                });
            }
        }
        Ok(())
    }
}

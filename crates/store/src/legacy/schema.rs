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

/// A table as the database spells it, with its columns.
pub(super) type Spelled = (String, Vec<String>);

impl Mapping {
    /// Rewrites every table and column name to the database's own spelling, for a
    /// database whose quoted identifiers are case-sensitive (PostgreSQL folds unquoted
    /// names to lower case, so a table created as `PatientID` has a column
    /// `patientid`). `names` holds, for each of [`Mapping::tables`] as the mapping
    /// writes it, the table as the database spells it and its columns; a name spelled
    /// exactly so is kept, else the one that differs only in case. Run after
    /// [`Mapping::check_schema`], which found every name.
    pub(super) fn respell(&mut self, names: &BTreeMap<String, Spelled>) {
        let table_of = |name: &str| {
            names.iter().find(|(t, _)| t.eq_ignore_ascii_case(name)).map(|(_, spelled)| spelled)
        };
        let respell_col = |col: &mut Col| {
            if let Some((table, columns)) = table_of(&col.table) {
                let column = columns
                    .iter()
                    .find(|c| **c == col.column)
                    .or_else(|| columns.iter().find(|c| c.eq_ignore_ascii_case(&col.column)));
                if let Some(column) = column {
                    col.column.clone_from(column);
                }
                col.table.clone_from(table);
            }
        };
        if let Some((table, _)) = table_of(&self.table) {
            self.table.clone_from(table);
        }
        for join in &mut self.joins {
            if let Some((table, _)) = table_of(&join.table) {
                join.table.clone_from(table);
            }
            for (a, b) in &mut join.on {
                respell_col(a);
                respell_col(b);
            }
        }
        respell_col(&mut self.id);
        for col in self
            .patient
            .iter_mut()
            .chain(self.date.iter_mut())
            .chain(self.last_updated.iter_mut())
            .chain(self.columns.iter_mut())
        {
            respell_col(col);
        }
    }
}

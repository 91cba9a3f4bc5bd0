//! Rows to resources: a row of a mapped table becomes one checked FHIR resource.

use super::{
    mapping::{Mapping, shape},
    template::{Node, Renderer, fhir_date, number},
};
use crate::{
    Result, StoreError, Stored,
    fhir::{FhirError, Resource, ResourceId, ResourceType},
    stamp,
};
use serde_json::{Map, Value};
use std::fmt;

/// A row as read: id, date and last update as SQL sees them, then the text columns.
#[derive(Debug)]
pub(super) struct RawRow {
    pub(super) id: Option<String>,
    pub(super) date_ms: Option<i64>,
    pub(super) last_updated_ms: Option<i64>,
    pub(super) cells: Vec<Option<String>>,
}

/// A problem with one row: the resource it was to become and what went wrong.
pub(super) fn row_error(ty: ResourceType, id: &str, what: impl fmt::Display) -> StoreError {
    StoreError::Database(format!("legacy database: {ty}/{id}: {what}"))
}

pub(super) fn set_path(obj: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            obj.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let inner = obj.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Some(inner) = inner.as_object_mut() {
                set_path(inner, rest, value);
            }
        }
    }
}

/// What kind of FHIR problem, without the values involved.
pub(super) const fn fhir_problem(e: &FhirError) -> &'static str {
    match e {
        FhirError::NotAnObject => "not a JSON object",
        FhirError::UnsupportedType(_) => "an unsupported type",
        FhirError::InvalidId(_) => "an invalid id",
        FhirError::MissingId => "no id",
        FhirError::InvalidDate(_) => "an invalid date",
        FhirError::InvalidSearch { .. } => "an invalid search",
    }
}

impl Mapping {
    /// The resource a row makes.
    pub(super) fn build(&self, row: RawRow) -> Result<Stored> {
        let ty = self.resource_type;
        let shape = shape(ty);
        let id_text = row.id.ok_or_else(|| {
            StoreError::Database(format!(
                "legacy database: a {ty} row has no id (column {} is NULL)",
                self.id
            ))
        })?;
        let id: ResourceId = id_text.parse().map_err(|_| {
            StoreError::Database(format!(
                "legacy database: a {ty} row's id (column {}) is not a valid FHIR id",
                self.id
            ))
        })?;
        let r = Renderer { mapping: self, id: id.as_str(), cells: &row.cells };
        let mut obj = Map::new();
        obj.insert("resourceType".into(), Value::String(ty.as_str().to_owned()));
        obj.insert("id".into(), Value::String(id.to_string()));
        // The top level stays even when all its placeholders are NULL.
        if let Node::Object(fields) = &self.template {
            for (key, field) in fields {
                if let Some(v) = r.render(field)? {
                    obj.insert(key.clone(), v);
                }
            }
        }
        if let (Some(col), Some(key)) = (&self.patient, shape.patient) {
            let slot = self.columns.iter().position(|c| c == col);
            if let Some(patient) = slot.and_then(|s| r.cell(s)) {
                let patient: ResourceId = patient.parse().map_err(|_| {
                    row_error(ty, id.as_str(), format!("column {col} is not a valid patient id"))
                })?;
                obj.insert(
                    key.into(),
                    serde_json::json!({ "reference": format!("Patient/{patient}") }),
                );
            }
        }
        if let Some(col) = &self.date {
            let slot = self.columns.iter().position(|c| c == col);
            if let Some(text) = slot.and_then(|s| r.cell(s)) {
                let date = fhir_date(text, shape.date_only).ok_or_else(|| {
                    row_error(ty, id.as_str(), format!("column {col} does not hold a date"))
                })?;
                set_path(&mut obj, shape.date_path, Value::String(date));
            }
        }
        if let (Some(coding), Some((key, list))) = (&self.code, shape.code)
            && let Some(concept) = r.concept(coding)
        {
            obj.insert(key.into(), if list { Value::Array(vec![concept]) } else { concept });
        }
        if let (Some(coding), Some(list)) = (&self.category, shape.category)
            && let Some(concept) = r.concept(coding)
        {
            let v = if list { Value::Array(vec![concept]) } else { concept };
            obj.insert("category".into(), v);
        }
        if let Some(q) = &self.value
            && let Some(text) = r.cell(q.value)
        {
            match number(text) {
                Some(n) => {
                    let mut quantity = Map::new();
                    quantity.insert("value".into(), Value::Number(n));
                    if let Some(unit) = q.unit.as_ref().and_then(|u| r.source(u)) {
                        quantity.insert("unit".into(), Value::String(unit.clone()));
                        if let Some(system) = &q.unit_system {
                            quantity.insert("system".into(), Value::String(system.clone()));
                            quantity.insert("code".into(), Value::String(unit));
                        }
                    }
                    obj.insert("valueQuantity".into(), Value::Object(quantity));
                }
                None => {
                    obj.insert("valueString".into(), Value::String(text.to_owned()));
                }
            }
        }
        let resource = Resource::parse(Value::Object(obj)).map_err(|e| {
            row_error(ty, id.as_str(), format!("the mapping made {}", fhir_problem(&e)))
        })?;
        if resource.index.date.map(|(start, _)| start) != row.date_ms {
            return Err(row_error(
                ty,
                id.as_str(),
                "its date reads differently as FHIR and in SQL; check the date column's format",
            ));
        }
        let last_updated = row.last_updated_ms.unwrap_or(0);
        let json = stamp(&resource, &id, 1, last_updated);
        Ok(Stored { resource_type: ty, id, version: 1, last_updated, json })
    }
}

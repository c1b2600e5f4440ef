//! The Arrow side of shredding (`shred`): the fields of the remainder and typed columns, the
//! builders the writer fills event by event, and the reader that rebuilds `context`,
//! `payload` and `metrics` from them exactly. (Just over 400 lines: the writer's and the
//! reader's halves of one set of columns, kept together so that they change together.)

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Array, Float64Builder,
    Int64Array, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, RecordBatch, StringBuilder,
};
use arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, Int64Type};
use eis_contract::{Event, JsonObject};

use crate::archive::columns::{invalid, named, Lists, Text};
use crate::archive::format::FormatError;
use crate::archive::shred::{
    self, column_name, Kind, Typed, CONTEXT, CONTEXT_REST, METRICS, METRICS_REST, PAYLOAD,
    PAYLOAD_REST,
};

const FILE: &str = "archive row";

fn text_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Utf8, false))
}

pub fn metric_keys() -> FieldRef {
    Arc::new(Field::new("keys", DataType::Utf8, false))
}

pub fn metric_values() -> FieldRef {
    Arc::new(Field::new("values", DataType::Float64, false))
}

pub fn metric_entries() -> FieldRef {
    Arc::new(Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![metric_keys(), metric_values()])),
        false,
    ))
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text => DataType::Utf8,
        Kind::Integer => DataType::Int64,
        Kind::Boolean => DataType::Boolean,
        Kind::TextList => DataType::List(text_item()),
    }
}

/// The shredded part of the schema, in column order: the three remainders (never null), then
/// the typed columns of `context`, `payload` and `metrics` (null where the event has no such
/// key, or its value stayed in the remainder).
pub fn fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new(CONTEXT_REST, DataType::Utf8, false),
        Field::new(PAYLOAD_REST, DataType::Utf8, false),
        Field::new(METRICS_REST, DataType::Map(metric_entries(), false), false),
    ];
    for (object, keys) in [("context", CONTEXT), ("payload", PAYLOAD)] {
        for (key, kind) in keys {
            fields.push(Field::new(column_name(object, key), data_type(*kind), true));
        }
    }
    for key in METRICS {
        fields.push(Field::new(
            column_name("metrics", key),
            DataType::Float64,
            true,
        ));
    }
    fields
}

enum TypedBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Boolean(BooleanBuilder),
    TextList(ListBuilder<StringBuilder>),
}

impl TypedBuilder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Text => TypedBuilder::Text(StringBuilder::new()),
            Kind::Integer => TypedBuilder::Integer(Int64Builder::new()),
            Kind::Boolean => TypedBuilder::Boolean(BooleanBuilder::new()),
            Kind::TextList => TypedBuilder::TextList(
                ListBuilder::new(StringBuilder::new()).with_field(text_item()),
            ),
        }
    }

    /// Appends the value (a null for `None`, or for a value of another kind, which `split`
    /// never gives); returns the bytes it holds.
    fn append(&mut self, value: Option<&Typed>) -> usize {
        match (self, value) {
            (TypedBuilder::Text(b), Some(Typed::Text(s))) => {
                b.append_value(s.as_ref());
                s.len() + 4
            }
            (TypedBuilder::Integer(b), Some(Typed::Integer(i))) => {
                b.append_value(*i);
                8
            }
            (TypedBuilder::Boolean(b), Some(Typed::Boolean(v))) => {
                b.append_value(*v);
                1
            }
            (TypedBuilder::TextList(b), Some(Typed::TextList(items))) => {
                for item in items {
                    b.values().append_value(item.as_ref());
                }
                b.append(true);
                items.iter().map(|i| i.len() + 4).sum::<usize>() + 4
            }
            (TypedBuilder::Text(b), _) => {
                b.append_null();
                4
            }
            (TypedBuilder::Integer(b), _) => {
                b.append_null();
                8
            }
            (TypedBuilder::Boolean(b), _) => {
                b.append_null();
                1
            }
            (TypedBuilder::TextList(b), _) => {
                b.append(false);
                4
            }
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            TypedBuilder::Text(mut b) => Arc::new(b.finish()),
            TypedBuilder::Integer(mut b) => Arc::new(b.finish()),
            TypedBuilder::Boolean(mut b) => Arc::new(b.finish()),
            TypedBuilder::TextList(mut b) => Arc::new(b.finish()),
        }
    }
}

struct ObjectBuilders {
    keys: &'static [(&'static str, Kind)],
    rest: StringBuilder,
    typed: Vec<TypedBuilder>,
}

impl ObjectBuilders {
    fn new(keys: &'static [(&'static str, Kind)]) -> Self {
        Self {
            keys,
            rest: StringBuilder::new(),
            typed: keys.iter().map(|(_, k)| TypedBuilder::new(*k)).collect(),
        }
    }

    fn append(&mut self, object: &JsonObject) -> usize {
        let split = shred::split(object.as_str(), self.keys);
        let mut bytes = split.rest.len() + 4;
        self.rest.append_value(&split.rest);
        for (builder, value) in self.typed.iter_mut().zip(&split.typed) {
            bytes += builder.append(value.as_ref());
        }
        bytes
    }
}

/// The builders of the shredded columns of one future file.
pub struct ShredBuilders {
    context: ObjectBuilders,
    payload: ObjectBuilders,
    metrics_rest: MapBuilder<StringBuilder, Float64Builder>,
    metrics: Vec<Float64Builder>,
}

impl Default for ShredBuilders {
    fn default() -> Self {
        Self::new()
    }
}

impl ShredBuilders {
    pub fn new() -> Self {
        let map_names = MapFieldNames {
            entry: "entries".into(),
            key: "keys".into(),
            value: "values".into(),
        };
        Self {
            context: ObjectBuilders::new(CONTEXT),
            payload: ObjectBuilders::new(PAYLOAD),
            metrics_rest: MapBuilder::new(
                Some(map_names),
                StringBuilder::new(),
                Float64Builder::new(),
            )
            .with_keys_field(metric_keys())
            .with_values_field(metric_values()),
            metrics: METRICS.iter().map(|_| Float64Builder::new()).collect(),
        }
    }

    /// Appends the event's `context`, `payload` and `metrics`; returns the bytes added.
    /// Fails only if the metrics map's keys and values differ in number (never: appended in
    /// pairs), before anything else is appended.
    pub fn append(&mut self, event: &Event) -> Result<usize, FormatError> {
        let (typed, rest) = shred::split_metrics(&event.metrics);
        let mut bytes = 0;
        for (name, value) in rest {
            self.metrics_rest.keys().append_value(name);
            self.metrics_rest.values().append_value(value);
            bytes += name.len() + 12;
        }
        self.metrics_rest.append(true)?;
        for (builder, value) in self.metrics.iter_mut().zip(typed) {
            builder.append_option(value);
            bytes += 8;
        }
        bytes += self.context.append(&event.context);
        bytes += self.payload.append(&event.payload);
        Ok(bytes)
    }

    /// The arrays, in the order of [`fields`].
    pub fn finish(mut self) -> Vec<ArrayRef> {
        let mut arrays: Vec<ArrayRef> = vec![
            Arc::new(self.context.rest.finish()),
            Arc::new(self.payload.rest.finish()),
            Arc::new(self.metrics_rest.finish()),
        ];
        arrays.extend(self.context.typed.into_iter().map(TypedBuilder::finish));
        arrays.extend(self.payload.typed.into_iter().map(TypedBuilder::finish));
        arrays.extend(
            self.metrics
                .into_iter()
                .map(|mut b| Arc::new(b.finish()) as ArrayRef),
        );
        arrays
    }
}

/// A typed column as read back, of any string or list type other writers use.
enum TypedColumn<'a> {
    Text(Text<'a>),
    Integer(&'a Int64Array),
    Boolean(&'a BooleanArray),
    TextList(Lists<'a>, Text<'a>),
}

impl<'a> TypedColumn<'a> {
    fn of(array: &'a dyn Array, kind: Kind) -> Option<Self> {
        Some(match kind {
            Kind::Text => TypedColumn::Text(Text::of(array)?),
            Kind::Integer => TypedColumn::Integer(array.as_primitive_opt::<Int64Type>()?),
            Kind::Boolean => TypedColumn::Boolean(array.as_boolean_opt()?),
            Kind::TextList => {
                let lists = Lists::of(array)?;
                let items = Text::of(lists.values().as_ref())?;
                TypedColumn::TextList(lists, items)
            }
        })
    }

    /// The row's value; `Ok(None)` for a null.
    fn get(&self, row: usize, what: &str) -> Result<Option<Typed<'a>>, FormatError> {
        let array: &dyn Array = match self {
            TypedColumn::Text(t) => {
                return Ok(t.get(row).map(|s| Typed::Text(Cow::Borrowed(s))));
            }
            TypedColumn::Integer(a) => *a,
            TypedColumn::Boolean(a) => *a,
            TypedColumn::TextList(lists, items) => {
                let Some(range) = lists.range(row) else {
                    return Ok(None);
                };
                let items = range
                    .map(|i| items.get(i).map(Cow::Borrowed))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid(FILE, what))?;
                return Ok(Some(Typed::TextList(items)));
            }
        };
        if row >= array.len() || array.is_null(row) {
            return Ok(None);
        }
        Ok(Some(match self {
            TypedColumn::Integer(a) => Typed::Integer(a.value(row)),
            TypedColumn::Boolean(a) => Typed::Boolean(a.value(row)),
            _ => return Err(invalid(FILE, what)),
        }))
    }
}

struct ObjectColumns<'a> {
    name: &'static str,
    keys: &'static [(&'static str, Kind)],
    rest: Text<'a>,
    /// One per key; `None` when the file lacks the column (all null).
    typed: Vec<Option<TypedColumn<'a>>>,
}

impl<'a> ObjectColumns<'a> {
    fn of(
        batch: &'a RecordBatch,
        name: &'static str,
        rest: &'static str,
        keys: &'static [(&'static str, Kind)],
    ) -> Result<Self, FormatError> {
        let rest = Text::of(named(batch, rest, FILE)?).ok_or_else(|| invalid(FILE, rest))?;
        let typed = keys
            .iter()
            .map(|(key, kind)| {
                let column = column_name(name, key);
                match batch.column_by_name(&column) {
                    None => Ok(None),
                    Some(c) => TypedColumn::of(c.as_ref(), *kind)
                        .map(Some)
                        .ok_or_else(|| invalid(FILE, &column)),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            keys,
            rest,
            typed,
        })
    }

    fn object(&self, row: usize) -> Result<JsonObject, FormatError> {
        let rest = self.rest.get(row).ok_or_else(|| invalid(FILE, self.name))?;
        let mut values = Vec::new();
        for ((key, _), column) in self.keys.iter().zip(&self.typed) {
            if let Some(value) = column
                .as_ref()
                .map(|c| c.get(row, key))
                .transpose()?
                .flatten()
            {
                values.push((*key, value));
            }
        }
        if values.is_empty() {
            return JsonObject::parse(rest).map_err(|_| invalid(FILE, self.name));
        }
        let text = shred::rebuild(values.iter().map(|(k, v)| (*k, v)), rest)
            .ok_or_else(|| invalid(FILE, self.name))?;
        JsonObject::parse(&text).map_err(|_| invalid(FILE, self.name))
    }
}

/// Reads `context`, `payload` and `metrics` back from the shredded columns of a batch.
pub struct ShredReader<'a> {
    context: ObjectColumns<'a>,
    payload: ObjectColumns<'a>,
    metrics_rest: &'a arrow::array::MapArray,
    metrics_rest_keys: Text<'a>,
    metrics_rest_values: &'a Float64Array,
    metrics: Vec<Option<&'a Float64Array>>,
}

impl<'a> ShredReader<'a> {
    /// `None` for a batch without the remainder columns (a file of format 3 or older).
    pub fn of(batch: &'a RecordBatch) -> Result<Option<Self>, FormatError> {
        if batch.column_by_name(CONTEXT_REST).is_none() {
            return Ok(None);
        }
        let metrics_rest = named(batch, METRICS_REST, FILE)?
            .as_map_opt()
            .ok_or_else(|| invalid(FILE, METRICS_REST))?;
        let (Some(keys), Some(values)) = (
            Text::of(metrics_rest.keys().as_ref()),
            metrics_rest.values().as_primitive_opt::<Float64Type>(),
        ) else {
            return Err(invalid(FILE, METRICS_REST));
        };
        let metrics = METRICS
            .iter()
            .map(|key| {
                let column = column_name("metrics", key);
                match batch.column_by_name(&column) {
                    None => Ok(None),
                    Some(c) => c
                        .as_primitive_opt::<Float64Type>()
                        .map(Some)
                        .ok_or_else(|| invalid(FILE, &column)),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Some(Self {
            context: ObjectColumns::of(batch, "context", CONTEXT_REST, CONTEXT)?,
            payload: ObjectColumns::of(batch, "payload", PAYLOAD_REST, PAYLOAD)?,
            metrics_rest,
            metrics_rest_keys: keys,
            metrics_rest_values: values,
            metrics,
        }))
    }

    pub fn context(&self, row: usize) -> Result<JsonObject, FormatError> {
        self.context.object(row)
    }

    pub fn payload(&self, row: usize) -> Result<JsonObject, FormatError> {
        self.payload.object(row)
    }

    pub fn metrics(&self, row: usize) -> Result<BTreeMap<String, f64>, FormatError> {
        let bad = || invalid(FILE, METRICS_REST);
        if row >= self.metrics_rest.len() || self.metrics_rest.is_null(row) {
            return Err(bad());
        }
        let offsets = self.metrics_rest.value_offsets();
        let (start, end) = match (offsets.get(row), offsets.get(row + 1)) {
            (Some(s), Some(e)) if 0 <= *s && s <= e => (*s as usize, *e as usize),
            _ => return Err(bad()),
        };
        let mut metrics = BTreeMap::new();
        for i in start..end {
            let key = self.metrics_rest_keys.get(i).ok_or_else(bad)?;
            if i >= self.metrics_rest_values.len() || self.metrics_rest_values.is_null(i) {
                return Err(bad());
            }
            metrics.insert(key.to_string(), self.metrics_rest_values.value(i));
        }
        for (key, column) in METRICS.iter().zip(&self.metrics) {
            let Some(column) = column else { continue };
            if row < column.len() && column.is_valid(row) {
                // A key in both the remainder and its column: not a file this writer wrote.
                if metrics.insert(key.to_string(), column.value(row)).is_some() {
                    return Err(bad());
                }
            }
        }
        Ok(metrics)
    }
}

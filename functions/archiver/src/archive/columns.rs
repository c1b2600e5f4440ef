//! Typed access to the columns of a Parquet file from any writer. The archiver writes Utf8
//! strings and 32-bit lists, but pyarrow, DuckDB or Spark may write the same columns as
//! LargeUtf8, Utf8View, dictionary-encoded strings or LargeList. Every accessor answers
//! `None` for a type it does not know, a null or an index out of range: the caller turns that
//! into an error for the file, never a panic (the files come from a bucket).

use std::ops::Range;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, LargeStringArray, OffsetSizeTrait, RecordBatch,
    StringArray, StringViewArray,
};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::errors::ParquetError;

use crate::archive::format::{FormatError, ROW_GROUP_ROWS};

/// The rows of one Parquet file, as batches of its own schema.
pub fn read_batches(body: Bytes) -> Result<Vec<RecordBatch>, FormatError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(body)?
        .with_batch_size(ROW_GROUP_ROWS)
        .build()?;
    Ok(reader.collect::<Result<Vec<_>, _>>()?)
}

/// The error for a file (`file` says which kind) whose `what` is missing or unreadable.
pub fn invalid(file: &str, what: &str) -> FormatError {
    FormatError::Parquet(ParquetError::General(format!(
        "{file}: {what} missing or invalid"
    )))
}

/// A column of `batch` by name, or the error for the file.
pub fn named<'a>(
    batch: &'a RecordBatch,
    name: &str,
    file: &str,
) -> Result<&'a dyn Array, FormatError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| invalid(file, name))
}

/// A column of strings, whatever its physical type.
pub enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    /// Dictionary-encoded strings (any key type): the keys, normalised, and the values.
    Dict {
        array: &'a dyn Array,
        keys: Vec<usize>,
        values: Box<Text<'a>>,
    },
}

impl<'a> Text<'a> {
    pub fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(a) = array.as_string_opt::<i32>() {
            return Some(Text::Utf8(a));
        }
        if let Some(a) = array.as_string_opt::<i64>() {
            return Some(Text::Large(a));
        }
        if let Some(a) = array.as_string_view_opt() {
            return Some(Text::View(a));
        }
        let dict = array.as_any_dictionary_opt()?;
        Some(Text::Dict {
            array,
            keys: dict.normalized_keys(),
            values: Box::new(Text::of(dict.values().as_ref())?),
        })
    }

    fn array(&self) -> &dyn Array {
        match self {
            Text::Utf8(a) => *a,
            Text::Large(a) => *a,
            Text::View(a) => *a,
            Text::Dict { array, .. } => *array,
        }
    }

    pub fn len(&self) -> usize {
        self.array().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th string; `None` when null or out of range.
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if i >= self.len() || self.array().is_null(i) {
            return None;
        }
        match self {
            Text::Utf8(a) => Some(a.value(i)),
            Text::Large(a) => Some(a.value(i)),
            Text::View(a) => Some(a.value(i)),
            Text::Dict { keys, values, .. } => values.get(*keys.get(i)?),
        }
    }
}

/// A column of lists (32- or 64-bit offsets): each row's range in the child array.
pub enum Lists<'a> {
    Small(&'a GenericListArray<i32>),
    Large(&'a GenericListArray<i64>),
}

fn range_of<O: OffsetSizeTrait>(a: &GenericListArray<O>, row: usize) -> Option<Range<usize>> {
    if row >= a.len() || a.is_null(row) {
        return None;
    }
    let offsets = a.value_offsets();
    let (start, end) = (
        offsets.get(row)?.as_usize(),
        offsets.get(row + 1)?.as_usize(),
    );
    (start <= end && end <= a.values().len()).then_some(start..end)
}

impl<'a> Lists<'a> {
    pub fn of(array: &'a dyn Array) -> Option<Self> {
        if let Some(a) = array.as_list_opt::<i32>() {
            return Some(Lists::Small(a));
        }
        array.as_list_opt::<i64>().map(Lists::Large)
    }

    /// The child array every row's range indexes into.
    pub fn values(&self) -> &'a ArrayRef {
        match self {
            Lists::Small(a) => a.values(),
            Lists::Large(a) => a.values(),
        }
    }

    /// The row's items in `values()`; `None` when null or out of range.
    pub fn range(&self, row: usize) -> Option<Range<usize>> {
        match self {
            Lists::Small(a) => range_of(a, row),
            Lists::Large(a) => range_of(a, row),
        }
    }
}

/// A struct child of a list, by field name, as strings.
pub fn struct_text<'a>(values: &'a ArrayRef, field: &str) -> Option<Text<'a>> {
    Text::of(values.as_struct_opt()?.column_by_name(field)?.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{DictionaryArray, Int32Array, LargeListArray, ListArray};
    use arrow::datatypes::{Int32Type, Int8Type};

    #[test]
    fn every_string_type_reads_the_same() {
        let small = StringArray::from(vec![Some("a"), None, Some("c")]);
        let large = LargeStringArray::from(vec![Some("a"), None, Some("c")]);
        let view = StringViewArray::from(vec![Some("a"), None, Some("c")]);
        let dict: DictionaryArray<Int8Type> =
            vec![Some("a"), None, Some("c")].into_iter().collect();
        let arrays: [&dyn Array; 4] = [&small, &large, &view, &dict];
        for array in arrays {
            let text = Text::of(array).expect("a string type");
            let read: Vec<_> = (0..4).map(|i| text.get(i)).collect();
            assert_eq!(read, [Some("a"), None, Some("c"), None]);
        }
        assert!(Text::of(&Int32Array::from(vec![1])).is_none());
    }

    #[test]
    fn lists_of_either_offset_width_give_ranges() {
        let items = vec![Some(vec![Some(1), Some(2)]), None, Some(vec![])];
        let small = ListArray::from_iter_primitive::<Int32Type, _, _>(items.clone());
        let large = LargeListArray::from_iter_primitive::<Int32Type, _, _>(items);
        let arrays: [&dyn Array; 2] = [&small, &large];
        for array in arrays {
            let lists = Lists::of(array).expect("a list type");
            assert_eq!(lists.range(0), Some(0..2));
            assert_eq!(lists.range(1), None);
            assert_eq!(lists.range(2), Some(2..2));
            assert_eq!(lists.range(3), None);
            assert_eq!(lists.values().len(), 2);
        }
        let not_a_list: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        assert!(Lists::of(not_a_list.as_ref()).is_none());
    }
}

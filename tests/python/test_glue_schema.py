"""The Glue table's columns (template.yaml) against the schema of a real archive file, written
by the archiver's own encoder and read with pyarrow: a change of the writer cannot drift from
the table Athena reads."""

import importlib.util

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import ROOT
from test_archive_format import archive_file  # noqa: F401 - the fixture (write-sample)


def load_template():
    spec = importlib.util.spec_from_file_location("template_conftest", ROOT / "tests" / "template" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_cfn(ROOT / "template.yaml")


def hive_type(t: pa.DataType) -> str:
    """The Hive/Glue type Athena needs to read a Parquet column of arrow type t."""
    if pa.types.is_dictionary(t):
        return hive_type(t.value_type)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_timestamp(t):
        return "timestamp"
    if pa.types.is_float64(t):
        return "double"
    if pa.types.is_float32(t):
        return "float"
    if pa.types.is_int64(t):
        return "bigint"
    if pa.types.is_int32(t):
        return "int"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_map(t):
        return f"map<{hive_type(t.key_type)},{hive_type(t.item_type)}>"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"array<{hive_type(t.value_type)}>"
    if pa.types.is_struct(t):
        return "struct<" + ",".join(f"{f.name}:{hive_type(f.type)}" for f in t) + ">"
    raise AssertionError(f"no Glue type for {t}")


# Columns of formats 1 to 3 that format 4 replaced by shredded ones (docs/archive.md, "Across
# the changes"): still in the table, so that Athena reads the older files; null in newer ones.
FORMAT_THREE_ONLY = [("context", "string"), ("metrics", "map<string,double>"), ("payload", "string")]


def test_glue_columns_are_the_archive_files_schema(archive_file):  # noqa: F811
    schema = pq.read_schema(archive_file)
    from_file = [(f.name, hive_type(f.type)) for f in schema]
    table = load_template()["Resources"]["ArchiveGlueTable"]["Properties"]["TableInput"]
    in_glue = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
    assert in_glue == from_file + FORMAT_THREE_ONLY
    assert not {name for name, _ in FORMAT_THREE_ONLY} & {name for name, _ in from_file}
    partition_keys = {k["Name"] for k in table["PartitionKeys"]}
    assert not partition_keys & {name for name, _ in from_file}, "a partition key shadows a column"


def test_the_mapping_tells_types_apart():
    """hive_type is what the comparison rests on: a changed writer type must change its result."""
    assert hive_type(pa.timestamp("us", tz="UTC")) == "timestamp"
    assert hive_type(pa.dictionary(pa.int32(), pa.string())) == "string"
    assert hive_type(pa.map_(pa.string(), pa.float64())) == "map<string,double>"
    assert hive_type(pa.list_(pa.struct([("a", pa.string())]))) == "array<struct<a:string>>"
    assert hive_type(pa.int64()) != hive_type(pa.float64())

//! E.6: max rows per segment from the schema.

use datacoord_segments::{max_rows_per_segment, sample_schema};
use milvus_proto::common::KeyValuePair;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_types::ErrorCode;

const BUDGET: f64 = 512.0 * 1024.0 * 1024.0;

fn field(data_type: DataType, params: &[(&str, &str)]) -> FieldSchema {
    FieldSchema {
        field_id: 200,
        name: format!("{data_type:?}"),
        data_type: data_type as i32,
        type_params: params
            .iter()
            .map(|(k, v)| KeyValuePair {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn fifty_six_byte_rows_give_the_2_3_5_count() {
    assert_eq!(
        max_rows_per_segment(&sample_schema(8), 512.0).unwrap(),
        9_586_980
    );
}

#[test]
fn one_more_eight_byte_field_gives_the_2_3_5_count() {
    let mut schema = sample_schema(8);
    schema.fields.push(field(DataType::Double, &[]));
    assert_eq!(max_rows_per_segment(&schema, 512.0).unwrap(), 8_388_608);
}

#[test]
fn each_type_adds_its_estimated_size() {
    let cases: Vec<(FieldSchema, i64)> = vec![
        (field(DataType::Bool, &[]), 1),
        (field(DataType::Int8, &[]), 1),
        (field(DataType::Int16, &[]), 2),
        (field(DataType::Int32, &[]), 4),
        (field(DataType::Float, &[]), 4),
        (field(DataType::Int64, &[]), 8),
        (field(DataType::VarChar, &[("max_length", "100")]), 100),
        (field(DataType::VarChar, &[("max_length", "65535")]), 256),
        (field(DataType::Json, &[]), 512),
        (field(DataType::Array, &[("max_capacity", "10")]), 512),
        (field(DataType::FloatVector, &[("dim", "128")]), 512),
        (field(DataType::BinaryVector, &[("dim", "128")]), 16),
        (field(DataType::Float16Vector, &[("dim", "128")]), 256),
        (field(DataType::FloatVector, &[]), 0),
        (field(DataType::String, &[]), 0),
    ];
    for (extra, size) in cases {
        let name = extra.name.clone();
        let schema = CollectionSchema {
            fields: vec![field(DataType::Int64, &[]), extra],
            ..Default::default()
        };
        let expected = (BUDGET / (8 + size) as f64).floor() as i64;
        assert_eq!(
            max_rows_per_segment(&schema, 512.0).unwrap(),
            expected,
            "{name}"
        );
    }
}

#[test]
fn varchar_without_max_length_is_an_error() {
    let schema = CollectionSchema {
        fields: vec![field(DataType::Int64, &[]), field(DataType::VarChar, &[])],
        ..Default::default()
    };
    let err = max_rows_per_segment(&schema, 512.0).unwrap_err();
    assert_eq!(err.code(), ErrorCode::PARAMETER_INVALID);
    assert!(err.to_string().contains("max_length"), "{err}");
}

#[test]
fn unparsable_dim_is_an_error() {
    let schema = CollectionSchema {
        fields: vec![field(DataType::FloatVector, &[("dim", "eight")])],
        ..Default::default()
    };
    assert!(max_rows_per_segment(&schema, 512.0).is_err());
}

#[test]
fn schema_without_sized_fields_is_an_error() {
    let empty = CollectionSchema::default();
    assert_eq!(
        max_rows_per_segment(&empty, 512.0).unwrap_err().code(),
        ErrorCode::PARAMETER_INVALID
    );
    let unsized_only = CollectionSchema {
        fields: vec![field(DataType::String, &[])],
        ..Default::default()
    };
    assert!(max_rows_per_segment(&unsized_only, 512.0).is_err());
}

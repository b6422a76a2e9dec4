//! Segment capacity from a collection schema (E.6): a byte budget over an estimated row size.

use milvus_proto::common::KeyValuePair;
use milvus_proto::schema::{CollectionSchema, DataType, FieldSchema};
use milvus_types::MilvusResult;

use crate::SegmentError;

/// Type-param key of a VarChar's maximum length.
const MAX_LENGTH_KEY: &str = "max_length";
/// Type-param key of a vector's dimension.
const DIM_KEY: &str = "dim";
/// Estimated bytes of a VarChar value: longer declared lengths are capped here because most
/// strings are far shorter than their limit.
const VARCHAR_SIZE_CAP: i64 = 256;
/// Estimated bytes of a JSON or Array value.
const DYNAMIC_FIELD_SIZE: i64 = 512;

/// `max_row_num` of a new segment: `floor(max_size_mb MiB / estimated row size)`. The row size
/// counts every schema field, system fields (RowID, Timestamp) included.
pub fn max_rows_per_segment(schema: &CollectionSchema, max_size_mb: f64) -> MilvusResult<i64> {
    let row_size = estimate_row_size(schema)?;
    if row_size <= 0 {
        return Err(SegmentError::InvalidSchema(format!(
            "estimated row size {row_size} of collection schema {:?}",
            schema.name
        ))
        .into());
    }
    let budget_bytes = max_size_mb * 1024.0 * 1024.0;
    // `as` truncates toward zero, the floor of a positive quotient.
    Ok((budget_bytes / row_size as f64) as i64)
}

/// Bytes per row as 2.3.5 estimates them.
fn estimate_row_size(schema: &CollectionSchema) -> Result<i64, SegmentError> {
    let mut total: i64 = 0;
    for field in &schema.fields {
        total = total.wrapping_add(field_size(field)?);
    }
    Ok(total)
}

fn field_size(field: &FieldSchema) -> Result<i64, SegmentError> {
    let data_type = DataType::try_from(field.data_type).unwrap_or(DataType::None);
    let size = match data_type {
        DataType::Bool | DataType::Int8 => 1,
        DataType::Int16 => 2,
        DataType::Int32 | DataType::Float => 4,
        DataType::Int64 | DataType::Double => 8,
        DataType::VarChar => varchar_size(field)?,
        DataType::Array | DataType::Json => DYNAMIC_FIELD_SIZE,
        DataType::FloatVector => dim(field)?.wrapping_mul(4),
        DataType::BinaryVector => dim(field)? / 8,
        DataType::Float16Vector => dim(field)?.wrapping_mul(2),
        // String, BFloat16Vector and unknown types are not sized by 2.3.5.
        _ => 0,
    };
    Ok(size)
}

fn varchar_size(field: &FieldSchema) -> Result<i64, SegmentError> {
    // The last occurrence of a repeated key wins, as with a map built from the list.
    let declared = field
        .type_params
        .iter()
        .rev()
        .find(|param| param.key == MAX_LENGTH_KEY)
        .ok_or_else(|| {
            SegmentError::InvalidSchema(format!(
                "the max_length was not specified, field {:?} is VarChar",
                field.name
            ))
        })?;
    Ok(parse_int(field, declared)?.min(VARCHAR_SIZE_CAP))
}

/// The vector dimension; a vector without one contributes nothing.
fn dim(field: &FieldSchema) -> Result<i64, SegmentError> {
    match field.type_params.iter().find(|param| param.key == DIM_KEY) {
        Some(param) => parse_int(field, param),
        None => Ok(0),
    }
}

fn parse_int(field: &FieldSchema, param: &KeyValuePair) -> Result<i64, SegmentError> {
    param.value.parse::<i64>().map_err(|err| {
        SegmentError::InvalidSchema(format!(
            "field {:?}: {} = {:?}: {err}",
            field.name, param.key, param.value
        ))
    })
}

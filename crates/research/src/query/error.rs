//! Why a query text is not a valid bounty query: [`QueryError`].

/// Why a query text is not a valid bounty query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The text is empty.
    #[error(
        "the query is empty: write e.g. 'mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500'"
    )]
    Empty,
    /// Not one of the aggregates.
    #[error(
        "unknown aggregate '{0}': use count, sum, mean, min, max, quantiles(...) or histogram(...)"
    )]
    UnknownAggregate(String),
    /// The element is not supported.
    #[error("unsupported element '{0}': only Observation.valueQuantity can be aggregated")]
    UnknownElement(String),
    /// Something else was found where a part of the query was expected.
    #[error("expected {expected} but found {found}")]
    Expected {
        /// What the grammar wanted.
        expected: String,
        /// What was there (`the end of the query` at the end).
        found: String,
    },
    /// A filter other than code, category, date and range.
    #[error("unknown filter '{0}': use code, category, date or range")]
    UnknownFilter(String),
    /// A filter given twice.
    #[error("the filter '{0}' is given twice")]
    Duplicate(String),
    /// A required filter is missing.
    #[error("the query needs {0}")]
    Missing(&'static str),
    /// Text after the end of the query.
    #[error("unexpected '{0}' after the end of the query")]
    Trailing(String),
    /// Not a finite decimal number.
    #[error("'{0}' is not a number: write a decimal like 12 or -0.5")]
    Number(String),
    /// A number beyond ±[`MAX_MAGNITUDE`](super::MAX_MAGNITUDE).
    #[error("{0} is too large: numbers must be within ±1e12")]
    TooLarge(String),
    /// Not a `YYYY-MM-DD` date.
    #[error("'{0}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-08")]
    Date(String),
    /// Not `system|code`.
    #[error("'{0}' is not a code: write it as system|code, e.g. http://loinc.org|2498-4")]
    Code(String),
    /// A category that is not a plain code or `system|code`.
    #[error("'{0}' is not a category: write a code such as laboratory, or system|code")]
    Category(String),
    /// The window's start is not before its end.
    #[error("the date window is empty or inverted: {from} is not before {until}")]
    InvertedWindow {
        /// The start given.
        from: String,
        /// The end given.
        until: String,
    },
    /// `range lo..hi` with lo >= hi.
    #[error("the range is empty or inverted: {lo} is not below {hi}")]
    InvertedRange {
        /// The low bound.
        lo: String,
        /// The high bound.
        hi: String,
    },
    /// `range` without `lo..hi`.
    #[error("'{0}' is not a range: write it as lo..hi, e.g. range 0..500")]
    Range(String),
    /// `quantiles()` with nothing in it.
    #[error(
        "quantiles needs at least one percentile, e.g. quantiles(Observation.valueQuantity, 25, 50, 75)"
    )]
    NoQuantiles,
    /// Too many quantiles.
    #[error("at most 20 quantiles may be asked for, not {0}")]
    TooManyQuantiles(usize),
    /// A percentile outside 0..=100.
    #[error("percentile {0} is outside 0..100")]
    Percentile(String),
    /// The same percentile twice.
    #[error("percentile {0} is asked for twice")]
    DuplicatePercentile(String),
    /// A histogram width that is not positive.
    #[error("the histogram width must be positive, not {0}")]
    Width(String),
    /// A histogram with too many bins.
    #[error(
        "the histogram would have {0} bins: at most 1000 are allowed, so use a wider bin or a narrower range"
    )]
    TooManyBins(usize),
    /// An unknown grouping.
    #[error("cannot group by '{0}': use sex, age_band or both")]
    UnknownGroup(String),
    /// `date in last N days` where only absolute dates are allowed.
    #[error(
        "relative windows (date in last N days) must be turned into dates by the provider before publishing: write date >= YYYY-MM-DD and date < YYYY-MM-DD"
    )]
    RelativeWindow,
    /// A relative window of a bad length.
    #[error("'{0}' is not a number of days: write date in last N days with N between 1 and 36600")]
    Days(String),
    /// Mixing a relative window with absolute dates.
    #[error("the date window is given both as 'date in last N days' and as dates: use one")]
    MixedWindow,
}

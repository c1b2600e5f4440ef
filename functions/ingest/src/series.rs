//! The `Experiment` and `Variant` dimensions of the ingest's per-variant metric
//! (`VariantRejected`): never a client's string. Only experiments of the registry copy the
//! function holds, and their registered variants, have series of their own; everything else is
//! summed under [`OTHER`]. Every distinct dimension value is a custom metric, billed per month,
//! and a Metrics Insights alarm reads at most 10 000 series: a client minting ids must not mint
//! metrics (docs/quarantine.md, "Metrics and the alarm").

use std::collections::BTreeMap;

use eis_contract::{Event, NamedVariant, Registry};
use uuid::Uuid;

/// The `Experiment` (and `Variant`) dimension value of every experiment the registry copy
/// does not hold (and of every variant it does not list for a registered experiment).
pub const OTHER: &str = "other";

/// One series of `VariantRejected`: a registered experiment and one of its listed variants,
/// None standing for [`OTHER`]. The number of series is therefore at most the registry's
/// experiments times (their variants + 1), plus one, whatever clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Series {
    pub(crate) experiment: Option<Uuid>,
    pub(crate) variant: Option<Uuid>,
}

impl Series {
    /// The series of (experiment, variant) under `registry` (None: no copy, all other).
    pub fn of(registry: Option<&Registry>, experiment: Uuid, variant: Uuid) -> Series {
        Series::parts(registry, Some(experiment), Some(variant))
    }

    /// The series of strings read from a rejected text: a registered id in any spelling
    /// `Uuid` parses is written in its canonical form, so spellings make no new series.
    pub fn named(registry: Option<&Registry>, named: &NamedVariant) -> Series {
        let id = |text: &str| Uuid::try_parse(text).ok();
        Series::parts(registry, id(&named.experiment_id), id(&named.variant_id))
    }

    fn parts(
        registry: Option<&Registry>,
        experiment: Option<Uuid>,
        variant: Option<Uuid>,
    ) -> Series {
        let registered = experiment
            .zip(registry)
            .and_then(|(e, r)| Some((e, r.experiment(&e)?)));
        match registered {
            Some((experiment, x)) => Series {
                experiment: Some(experiment),
                variant: variant.filter(|v| x.variants.contains(v)),
            },
            None => Series {
                experiment: None,
                variant: None,
            },
        }
    }

    /// The dimension value of `id`: its canonical form, or [`OTHER`].
    pub(crate) fn dimension(id: Option<Uuid>) -> String {
        id.map_or_else(|| OTHER.to_string(), |id| id.hyphenated().to_string())
    }
}

/// Per series, the (accepted, rejected) events of a request: each event counts once in each
/// series it falls in.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct VariantCounts(pub BTreeMap<Series, (usize, usize)>);

impl VariantCounts {
    /// An accepted event's variants.
    pub fn accepted(&mut self, event: &Event, registry: Option<&Registry>) {
        let series = event
            .experiments
            .iter()
            .map(|e| Series::of(registry, e.experiment_id, e.variant_id));
        self.observe(series, false);
    }

    /// A rejected event's variants, as its text named them (any strings).
    pub fn rejected(&mut self, named: &[NamedVariant], registry: Option<&Registry>) {
        let series = named.iter().map(|v| Series::named(registry, v));
        self.observe(series, true);
    }

    fn observe(&mut self, series: impl Iterator<Item = Series>, rejected: bool) {
        let mut series: Vec<Series> = series.collect();
        series.sort();
        series.dedup();
        for s in series {
            let (accepted_n, rejected_n) = self.0.entry(s).or_default();
            *if rejected { rejected_n } else { accepted_n } += 1;
        }
    }
}

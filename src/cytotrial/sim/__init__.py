"""A simulated immunotherapy trial: FCS files whose every event has a known identity.

The simulator writes what a trial's flow cytometry core would hand over for the model case
(bempegaldesleukin + nivolumab, ``BEMPEG+NIVO``, versus nivolumab alone, ``NIVO``; 21-day cycles;
blood at C1D1, C1D8, C2D1, C3D1, C5D1; tumor biopsies at C1D1 and C2D1), together with the truth
that real data never has.

Layout written by :func:`simulate_trial` into ``DIR``::

    fcs/<sample_id>.fcs        FCS 3.1, float32, one file per sample (panels ``blood``/``tumor``)
    samples.tsv                the sample sheet (contract columns, ``fcs`` relative to DIR; the
                               drift mode adds ``site`` and ``instrument`` after ``batch``)
    patients.tsv               clinical outcome per patient (RECIST 1.1 best response, PFS, OS)
    truth/populations.tsv      true event count of every canonical population in every sample
    truth/effects.tsv          the effect model: true fold change versus baseline
    truth/acquisition.tsv      per sample: site, instrument, dead/debris/doublet rates, events and
                               the acquisition anomaly (kind, start and stop in seconds, events)
    truth/drift.tsv            per sample and channel: gain, offset and spread it was given
    truth/events/<id>.npy      per event (one byte, file order): cell type, dead, doublet,
                               anomalous; read with :func:`truth_events`

Two modes
---------
The clean mode (the default of :func:`simulate_trial` and :func:`simulate_sample`) draws
separated populations with a few percent of batch shift. The drift mode (``drift=True``, a
:class:`Drift` or a mapping of its sizes) adds what a multi-site trial acquired over years
brings; the patients, samples and sheet rows stay the same:

- per run (one site's acquisition of one batch, on one of the site's instruments): FSC (FSC-A
  and FSC-H together) and SSC gains, each log-uniform within ±30% (``scatter_gain``; sites set
  scatter voltages per session), a daily gain of each fluorescence channel (±10%), an offset
  of each marker's background (±50) and the spread (CV) of every population per channel (±15%);
- per instrument: each fluorescence detector's gain (±10%); per reagent lot (one per batch):
  each marker's brightness (±30%). Fluorescence gains and offsets act on the unmixed signal,
  before spillover, so the file's ``$SPILLOVER`` stays true;
- continuous, overlapping expression: CD25 from none to dim on conventional CD4 T cells with
  Tregs as its bright tail, CD127 continuous and low on Tregs, CD56 dim and bright NK cells,
  broad Ki67, HLA-DR and CD38 clouds (CD38 dim on resting T cells), wider lymphocyte scatter;
  valleys between the labelled populations remain in every file;
- dead and debris rates drawn up to twice the clean mode's upper bounds;
- in 15% of files an acquisition anomaly over 5-15% of the acquisition time: a flow-rate burst
  (x2-4), a gap (the flow nearly stops), a clog (rate x0.3-0.6 and every channel x0.55-0.75)
  or a shift (FSC, SSC and 1-3 fluorescence channels x0.6-0.75 or x1.35-1.7). Its events
  differ from the others only in time-binned rate and medians; they belong to no truth
  population (a correct analysis removes them before gating), and
  :attr:`SimulatedSample.anomalous` and ``truth/events/`` flag them.

Measured with every anomalous event removed, for cd3, cd4, cd8, treg, nk, cd8_ki67 and
cd8_activated (samples with at least 50 true events), the fixed default strategies' 95th
percentile of a sample's relative count error is 28-40% per population on the drifting demo
(seed 2024) and 16-24% on a trial of 100 patients per arm (medians 0.2-2.4%); the same gates
moved by each file's true gains and offsets give medians of at most 1.2% and 95th percentiles
of at most 3.2%: the valleys are there for gates placed from each sample's own data.

Signal model
------------
Every event is drawn as one cell type (:data:`CELL_TYPES`): lymphocyte subsets (conventional
CD4 T, Treg, CD8 T cells resting or activated (HLA-DR+CD38+), each Ki67- or Ki67+, and the single
positive HLA-DR+CD38- and CD38+HLA-DR- CD8 T cells, NK, B, other T cells), monocytes,
granulocytes, debris and, in tumor, large and small CD45- tumor cells. Independently, each cell
(not debris) is dead with the sample's dead rate and a doublet with the sample's doublet rate.
Scatter is log-normal per type (doublets: FSC-A and SSC-A grow by part of a partner's, FSC-H
barely; dead cells: lower FSC, higher SSC). Each marker is either negative or a log-normal cloud
(a Gaussian cloud on a logicle scale); negatives sit near 0 with spread from electronic noise,
autofluorescence and spillover spreading, so compensated values go below 0 as in real data. Dead
cells are viability-dye bright. HLA-DR is bright on B cells, monocytes and activated T cells;
CD38 on NK cells, B cells, monocytes and activated T cells, dim on resting T cells. The unmixed
signal is then mixed with the panel's spillover matrix ``S`` (FCS convention:
``observed = unmixed @ S``, row ``i`` of ``S`` is how fluorochrome ``i`` spills into every
detector), which is written as ``$SPILLOVER``, so ``observed @ inv(S)`` recovers the unmixed
signal. Acquisition batches shift intensities by a few percent (the clean mode; the drift mode
above does more).

Truth
-----
A population's true count is the number of events whose labels satisfy every criterion on the
population's gate path in the default gating trees (``resources/gating/blood.xml``,
``tumor.xml``), or, for the demo's Boolean populations, their expression over those gates:

- ``lymphocytes``: events of lymphocyte scatter, i.e. lymphocyte subsets and, in tumor, small
  tumor cells that scatter like lymphocytes, including their dead cells and doublets;
- ``singlets``: lymphocytes that are not doublets;
- ``live``: singlets that are not dead;
- ``leukocytes`` (tumor only): live events of a CD45+ lymphocyte subset;
- ``cd3``: live (tumor: leukocytes) conventional CD4, Treg, CD8 and other T cells;
- ``cd4``: live conventional CD4 T cells and Tregs; ``treg``: live Tregs;
- ``cd8``: live CD8 T cells (every CD8 type); ``cd8_ki67``: live Ki67+ CD8 T cells;
- ``cd8_hladr``: live HLA-DR+ CD8 T cells (activated and HLA-DR+CD38-); ``cd8_cd38``: live CD38+
  CD8 T cells (activated and CD38+HLA-DR-);
- ``nk``: live NK cells;
- ``cd8_activated`` (``cd8_hladr and cd8_cd38``): live activated (HLA-DR+CD38+) CD8 T cells;
  ``cd4_conv`` (``cd4 and not treg``): live conventional CD4 T cells.

Events of an acquisition anomaly (drift mode) are in no population
(``include_anomalous=True`` of :meth:`SimulatedSample.truth_counts` counts them by their labels).

Trial model
-----------
Blood: each patient has baseline abundances per microlitre of every lymphocyte subset (published
blood values for the typical patient: CD8 ~32% of CD3, Treg ~7% of CD4, NK ~12% of lymphocytes;
~5% of CD8 T cells HLA-DR+CD38+, a third of those and ~2% of the others Ki67+), spread between
patients. At each visit the abundance is
``baseline x fold_change ** responsiveness x visit noise``, with the arm's fold change of
:data:`BLOOD_EFFECTS`; ``lymphocytes_per_ul`` is the sum over lymphocyte subsets, and the file's
event composition follows (plus monocytes, granulocytes, debris, dead cells and doublets).
Tumor: relative abundances of infiltrating subsets, myeloid cells and tumor cells, with the same
on-treatment change in both arms (:data:`TUMOR_EFFECTS`). Patients get a RECIST best response
(objective response rate about a third, equal in both arms), progression-free and overall
survival; patients stop at progression (mostly progressive disease, early) or for toxicity, so
later visits have fewer samples. In BEMPEG+NIVO blood, activated and Ki67+ CD8 T cells rise most,
strongly at C1D8, and fade over later cycles; NIVO raises them a little; tumor changes are the
same in both arms. ``truth/effects.tsv`` gives, for the typical noise-free patient, the fold
change versus baseline of ``per_ul`` (blood: count / live x lymphocytes_per_ul) and
``freq_parent`` (count / count of the population's parent: the nearest truth population above
it, all events for ``lymphocytes``; ``nk``: live, tumor: leukocytes; ``cd8_activated``: cd8;
``cd4_conv``: cd4).

Identifiers: the TEXT segment carries keywords a site would leave (``$SRC`` with a made-up
patient name, ``$OP``, ``$FIL``, ``$INST``, ``$COM``, ``$SMNO``, ``PATIENT ID``), each value
containing :data:`CANARY` so that any leak into outputs is easy to find; ``$DATE``/``$BTIM``/
``$ETIM`` are valid FCS dates and times derived from the seed. None of them reaches the tables.

Modules: ``_panel`` (panels, signal model, spillover), ``_truth`` (truth populations, their
gate paths, per-event truth), ``_sample`` (one sample's events), ``_drift`` (the drift mode's
sizes, instruments, lots, runs and anomalies), ``_biology`` (the drift mode's continuous
expression), ``_fcs_writer`` (FCS files), ``_effects`` (trial model and expected effects),
``_identifiers`` (TEXT keywords), ``_design`` (patients and their samples), ``_trial`` (running
a trial).

Randomness: one :class:`numpy.random.SeedSequence` per trial; the trial design draws from one
child, the drift mode's instruments, lots, runs and anomalies from another, and every sample
from its own spawned child, so files are byte-identical for the same arguments whatever the
number of worker processes (and the clean mode's files do not depend on the drift mode's
existence).
"""

from ._drift import ANOMALY_KINDS, Anomaly, Drift, SampleDrift
from ._effects import ARMS, BLOOD_EFFECTS, TUMOR_EFFECTS, VISITS, effect_model, typical_composition
from ._fcs_writer import write_fcs
from ._identifiers import CANARY, IDENTIFYING_KEYWORDS
from ._panel import CELL_TYPES, PANELS, spillover_matrix
from ._sample import SimulatedSample, simulate_sample
from ._trial import ACQUISITION_COLUMNS, DRIFT_COLUMNS, TrialSummary, simulate_trial
from ._truth import POPULATIONS, EventTruth, truth_events

__all__ = [
    "ACQUISITION_COLUMNS",
    "ANOMALY_KINDS",
    "ARMS",
    "BLOOD_EFFECTS",
    "CANARY",
    "CELL_TYPES",
    "DRIFT_COLUMNS",
    "IDENTIFYING_KEYWORDS",
    "PANELS",
    "POPULATIONS",
    "TUMOR_EFFECTS",
    "VISITS",
    "Anomaly",
    "Drift",
    "EventTruth",
    "SampleDrift",
    "SimulatedSample",
    "TrialSummary",
    "effect_model",
    "simulate_sample",
    "simulate_trial",
    "spillover_matrix",
    "truth_events",
    "typical_composition",
    "write_fcs",
]

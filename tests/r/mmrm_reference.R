#!/usr/bin/env Rscript
# Reference MMRM fits for tests/test_mmrm.py: nlme::gls by REML and emmeans Satterthwaite contrasts.
#
#   Rscript tests/r/mmrm_reference.R [input_dir [output_dir]]
#
# For every planted data set <name>.tsv of input_dir (default tests/data/mmrm; columns patient_id,
# arm, visit, visit_index, baseline, change; reference arm NIVO) writes <name>_r.tsv to output_dir
# (default: input_dir): covariance, visit, contrast, estimate, se, df, df_nlme. Every covariance structure
# of cytotrial's fallback order is fitted:
#   unstructured                     corSymm(form = ~ visit_index | patient_id) + varIdent(~ 1 | visit)
#   heterogeneous_toeplitz           corARMA(form = ~ visit_index | patient_id, p = T - 1) + varIdent
#   heterogeneous_compound_symmetry  corCompSymm(form = ~ 1 | patient_id) + varIdent
#   compound_symmetry                corCompSymm(form = ~ 1 | patient_id)
# With one post-baseline visit the model is the ANCOVA change ~ baseline + arm (covariance
# "ancova"). Contrasts: emmeans(fit, ~ arm | visit, mode = "satterthwaite") (at the mean
# baseline) and arm - NIVO at each visit (trt.vs.ctrl, no adjustment).
#
# Satterthwaite df: emmeans differentiates vcov(beta) in the covariance parameters (numDeriv) and
# takes their covariance from the fit's apVar, the inverse observed REML information. apVar is
# computed in the unconstrained parametrisation (glsControl(natural = FALSE)), so that emmeans
# takes that analytic path, not its simulation-based "appx-satterthwaite". nlme gets apVar from
# a finite-difference Hessian (fdHess) that is off by up to a few percent in the df; column `df`
# uses the same REML log-likelihood of nlme (glsApVar.fullGlsLogLik) with numDeriv's Richardson
# Hessian instead, and `df_nlme` is emmeans with nlme's own apVar, for comparison.
# Needs R with nlme, emmeans and numDeriv (Debian: r-base-core r-cran-nlme r-cran-emmeans).

suppressPackageStartupMessages({
  library(nlme)
  library(emmeans)
  library(numDeriv)
})

# nlme's apVar, recomputed with an accurate Hessian of the same REML log-likelihood; nlme's own
# (fdHess) is kept in `stock_apvar` for the df_nlme column
nlme_apvar <- nlme:::glsApVar
stock_apvar <- NULL
precise_apvar <- function(glsSt, sigma, conLin = attr(glsSt, "conLin"),
                          .relStep = .Machine$double.eps^(1 / 3), minAbsPar = 0,
                          natural = TRUE) {
  stock_apvar <<- nlme_apvar(glsSt, sigma, conLin, .relStep, minAbsPar, natural)
  if (length(coef(glsSt)) == 0L) {  # no covariance parameters besides sigma: as nlme
    return(stock_apvar)
  }
  dims <- conLin$dims
  conLin[["logLik"]] <- 0
  n_reml <- dims$N - dims$REML * dims$p
  pars <- c(coef(glsSt), lSigma = log(sigma))
  loglik <- function(p) nlme:::glsApVar.fullGlsLogLik(p, glsSt, conLin, dims, n_reml)
  val <- solve(-numDeriv::hessian(loglik, pars))
  dimnames(val) <- list(names(pars), names(pars))
  attr(val, "Pars") <- pars
  attr(val, "natural") <- natural
  val
}
assignInNamespace("glsApVar", precise_apvar, "nlme")

args <- commandArgs(trailingOnly = TRUE)
in_dir <- if (length(args) >= 1) args[[1]] else "tests/data/mmrm"
out_dir <- if (length(args) >= 2) args[[2]] else in_dir
reference <- "NIVO"
datasets <- c(
  "balanced_12", "missing_12", "unbalanced", "balanced_24", "missing_24", "three_arms",
  "one_visit", "demo_cd8_blood", "demo_treg_blood", "demo_cd8_treg_blood",
  "demo_cd8_ki67_mfi_blood", "demo_nk_tumor"
)
structures <- c(
  "unstructured", "heterogeneous_toeplitz", "heterogeneous_compound_symmetry",
  "compound_symmetry"
)
ctrl <- glsControl(
  maxIter = 500, msMaxIter = 500, tolerance = 1e-10, msTol = 1e-10, natural = FALSE
)

read_input <- function(path) {
  d <- read.delim(path, colClasses = c(patient_id = "character", arm = "character",
                                       visit = "character"))
  visits <- unique(d$visit[order(d$visit_index)])
  arms <- c(reference, sort(setdiff(unique(d$arm), reference)))
  d$arm <- factor(d$arm, levels = arms)
  d$visit <- factor(d$visit, levels = visits)
  d$patient_id <- factor(d$patient_id)
  d[order(d$patient_id, d$visit_index), ]
}

# the fits refer to the global `mmrm_data`, so that emmeans finds the data of the call
fit_structure <- function(structure, n_visits) {
  if (n_visits == 1) {
    return(gls(change ~ baseline + arm, data = mmrm_data, method = "REML", control = ctrl))
  }
  switch(structure,
    unstructured = gls(change ~ baseline + arm * visit + baseline:visit, data = mmrm_data,
      correlation = corSymm(form = ~ visit_index | patient_id),
      weights = varIdent(form = ~ 1 | visit), method = "REML", control = ctrl),
    heterogeneous_toeplitz = gls(change ~ baseline + arm * visit + baseline:visit,
      data = mmrm_data,
      correlation = corARMA(form = ~ visit_index | patient_id, p = n_visits - 1, q = 0),
      weights = varIdent(form = ~ 1 | visit), method = "REML", control = ctrl),
    heterogeneous_compound_symmetry = gls(change ~ baseline + arm * visit + baseline:visit,
      data = mmrm_data, correlation = corCompSymm(form = ~ 1 | patient_id),
      weights = varIdent(form = ~ 1 | visit), method = "REML", control = ctrl),
    compound_symmetry = gls(change ~ baseline + arm * visit + baseline:visit,
      data = mmrm_data, correlation = corCompSymm(form = ~ 1 | patient_id),
      method = "REML", control = ctrl)
  )
}

emm_tables <- function(fit, n_visits) {
  spec <- if (n_visits == 1) ~ arm else ~ arm | visit
  emm <- emmeans(fit, spec, mode = "satterthwaite", data = mmrm_data)
  list(
    diffs = as.data.frame(summary(contrast(emm, method = "trt.vs.ctrl", ref = 1,
                                           adjust = "none"))),
    means = as.data.frame(summary(emm))
  )
}

contrast_rows <- function(fit, n_visits, covariance) {
  precise <- emm_tables(fit, n_visits)
  stock <- NULL
  if (is.matrix(stock_apvar)) {
    fit$apVar <- stock_apvar
    stock <- emm_tables(fit, n_visits)
  }
  stock_df <- function(part) if (is.null(stock)) NA_real_ else stock[[part]]$df
  visit <- function(tab) if (n_visits == 1) rep(levels(mmrm_data$visit), nrow(tab)) else
    as.character(tab$visit)
  diffs <- precise$diffs
  means <- precise$means
  rbind(
    data.frame(covariance = covariance, visit = visit(diffs),
               contrast = gsub("[()]", "", as.character(diffs$contrast)),
               estimate = diffs$estimate, se = diffs$SE, df = diffs$df,
               df_nlme = stock_df("diffs")),
    data.frame(covariance = covariance, visit = visit(means),
               contrast = paste(as.character(means$arm), "adjusted mean"),
               estimate = means$emmean, se = means$SE, df = means$df,
               df_nlme = stock_df("means"))
  )
}

for (name in datasets) {
  mmrm_data <- read_input(file.path(in_dir, paste0(name, ".tsv")))
  n_visits <- nlevels(mmrm_data$visit)
  todo <- if (n_visits == 1) "ancova" else structures
  out <- list()
  for (structure in todo) {
    rows <- tryCatch(
      contrast_rows(fit_structure(structure, n_visits), n_visits, structure),
      error = function(e) {
        message(name, " ", structure, ": not fitted: ", conditionMessage(e))
        NULL
      }
    )
    out[[structure]] <- rows
  }
  table <- do.call(rbind, out)
  write.table(table, file.path(out_dir, paste0(name, "_r.tsv")),
              sep = "\t", quote = FALSE, row.names = FALSE)
  message(name, ": ", nrow(table), " rows")
}

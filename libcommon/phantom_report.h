/* phantom_report.h — a MIMIC-CXR style report (FINDINGS and IMPRESSION) for a
 * phantom case, written from its findings with varied phrasing: every finding
 * on the film is mentioned (hedged where the case says uncertain), every
 * negation is of a finding that is absent, with laterality and size words,
 * and now and then the noise of real reports (de-identification blanks,
 * comparisons, doubled spaces). */
#ifndef SYNTHCXR_PHANTOM_REPORT_H
#define SYNTHCXR_PHANTOM_REPORT_H

#include "phantom_findings.h"

typedef struct phantom_report {
    char *findings;     /* the FINDINGS section, sentences */
    char *impression;   /* the IMPRESSION section */
} phantom_report;

/* Write c's report (its own generator stream: the same case, the same text). */
void phantom_report_make(const phantom_case *c, phantom_report *r);
void phantom_report_free(phantom_report *r);

/* Lower-case words whose presence in a sentence means it speaks of label l
 * (NULL-terminated); a sentence that speaks of an absent label carries one of
 * phantom_negation_cues. For the consistency tests. */
extern const char *const *const phantom_label_words[PL_N];
extern const char *const phantom_negation_cues[];
extern const char *const phantom_hedge_cues[];

#endif

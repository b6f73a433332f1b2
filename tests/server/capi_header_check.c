/* Compiles include/afd/afd.h as C (C11, -Wall -Wextra) and exercises it from C: called by test_capi.cpp. */
#include "afd/afd.h"

#include <string.h>

/* Returns 0 when a bad YAML string fails with AFD_ERR_CONFIG and a message, from C. */
int afd_c_check_bad_yaml(void) {
  afd_engine* e = (afd_engine*)1;
  const afd_status s = afd_engine_create_from_yaml_string("model: [unterminated", NULL, &e);
  if (s != AFD_ERR_CONFIG || e != NULL) return 1;
  if (strlen(afd_last_error()) == 0) return 2;
  afd_request_params p;
  afd_request_params_init(&p);
  if (p.max_new_tokens <= 0 || p.top_p != 1.0f) return 3;
  afd_engine_destroy(NULL);
  return 0;
}

/* lbctl fleet (tools/ctl_fleet.c). */
#ifndef TOOLS_CTL_FLEET_H
#define TOOLS_CTL_FLEET_H

struct ctl_json;

/* Prints lb's `fleet` answer @v for people. */
void ctl_fleet_print(const struct ctl_json *v);

/* The connections to @cluster/@server that every instance's heartbeat reports, summed. */
double ctl_fleet_active(const struct ctl_json *v, const char *cluster, const char *server);

#endif

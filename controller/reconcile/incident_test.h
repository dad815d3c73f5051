/*
 * incident_test — for unit tests only: how many times the storm check
 * counted a policy's VMs, and forgetting what it remembered between tests.
 * Only incident.c and tests include this header (make lint checks).
 */
#ifndef KVR_INCIDENT_TEST_H
#define KVR_INCIDENT_TEST_H

/** How many times the storm check walked a namespace's VMs
 *  (incident_count_down()) since the start or incident_storm_forget(). */
unsigned long incident_storm_walks(void);

/** Forgets every policy's remembered count and zeroes the walks counted. */
void incident_storm_forget(void);

#endif

/*
 * storefl-agent campaign: the federated demo's planning and live view (scripts/demo-campaign.sh).
 *   plan   picks the stores (the largest eligible customers), the few-shot cut dates and the noise
 *          multiplier that keeps every store under its epsilon cap (the privacy accountant)
 *   watch  follows a campaign on a real aggregator as an observer: per closed round, the held-out
 *          new-product metrics of the global and personalised models, epsilon per store, bytes and
 *          time; at the end the comparison with the baselines on the same events
 */
#ifndef STOREFL_CMD_CAMPAIGN_H
#define STOREFL_CMD_CAMPAIGN_H

int storefl_cmd_campaign(int argc, char **argv);

#endif

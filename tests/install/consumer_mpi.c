/* SPDX-License-Identifier: MIT */
/*
 * consumer_mpi.c - a program outside the project that links an installed
 * MPI executor (cfutures::cfutures_mpi). It starts no MPI job: a null
 * communicator must be refused with EINVAL before MPI is touched, which
 * shows that the header, the library and MPI link and run together.
 */
#include <cfutures/mpi.h>

#include <errno.h>
#include <stdio.h>

int main(void)
{
    errno = 0;
    cf_executor *ex = cf_mpi_pool_new(MPI_COMM_NULL, 0, NULL);
    if (ex != NULL || errno != EINVAL) {
        fprintf(stderr, "cf_mpi_pool_new(MPI_COMM_NULL): %p, errno %d\n",
                (void *)ex, errno);
        return 1;
    }
    printf("OK\n");
    return 0;
}
